"""GPU tier (skipped without CUDA): the MiniLM routers on a GPU give the CPU path's decisions.

Run on a GPU machine with ``pytest tests/gpu``; figures come from ``rayroute bench-routers --device
cuda``, not from here."""

import numpy as np
import pytest

from routers.base import strong_mask
from routers.embeddings import SentenceTransformerEmbedder
from routers.registry import load_router

PROMPTS = [f"Question {i}: " + text for i, text in enumerate([
    "What is the derivative of x^2 sin(x)?",
    "Write a haiku about autumn leaves.",
    "Janet has 3 apples and buys 5 more. How many does she have?",
    "Explain TCP vs UDP.",
    "Translate 'good morning' into French and German.",
    "Prove that the square root of 2 is irrational, step by step, with every detail.",
    "hi",
    "Which of these is a prime number? A. 21 B. 27 C. 29 D. 33 Answer:",
] * 8)]


@pytest.fixture(scope="module")
def vectors():
    cpu = SentenceTransformerEmbedder(device="cpu").embed(PROMPTS)
    gpu = SentenceTransformerEmbedder(device="cuda", batch_size=64).embed(PROMPTS)
    return cpu, gpu


def test_minilm_on_gpu_matches_cpu(vectors):
    cpu, gpu = vectors
    assert gpu.shape == cpu.shape == (len(PROMPTS), 384)
    cos = (cpu * gpu).sum(axis=1)
    assert cos.min() > 0.999, cos.min()


@pytest.mark.parametrize("name", ["mf", "sw_ranking"])
def test_embedding_routers_decide_the_same_on_gpu(vectors, name):
    cpu, gpu = vectors
    router = load_router(name)
    pc, pg = router.score_embeddings(cpu), router.score_embeddings(gpu)
    assert np.max(np.abs(pc - pg)) < 5e-3
    for alpha in np.quantile(pc, [0.25, 0.5, 0.75]):
        assert np.mean(strong_mask(pc, alpha) == strong_mask(pg, alpha)) >= 0.95
