"""Golden scores: each committed checkpoint's P(strong) on fixed prompts, pinned.

The documented APGR of a checkpoint (results/quality/results.md, checkpoints/README.md) holds only while the
checkpoint scores as it did when it was measured. A change in features, tokenisation, embedder or
loading that moves any of these scores fails here; if the change is intended, re-run the
evaluation, update the docs, and re-pin the values printed by the failing assertion.
"""

from __future__ import annotations

import numpy as np
import pytest

from routers.registry import default_checkpoint_dir, load_router

PROMPTS = [
    "hello there, how are you?",
    "Prove that there are infinitely many primes.",
    "Write a python function that returns the nth Fibonacci number.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Which of the following is a primary color?\nA. Green\nB. Red\nC. Purple\nD. Orange\nAnswer:",
]

GOLDEN = {
    "linear_aux_static": [0.436704, 0.537205, 0.531978, 0.60963, 0.484125],
    "linear_static": [0.512201, 0.601929, 0.652827, 0.762908, 0.484511],
    "mf_static": [0.922277, 0.848437, 0.56057, 0.878555, 0.516908],
    "sw_static": [0.640808, 0.629248, 0.617883, 0.638243, 0.621586],
    "mf": [0.565304, 0.770572, 0.580501, 0.795605, 0.562942],
    "sw_ranking": [0.633598, 0.633389, 0.624307, 0.628096, 0.613609],
}


#: N-way checkpoints (routers.nway): predicted quality of (gpt-4-1106-preview, mistral-7b-chat) per prompt
GOLDEN_NWAY = {
    "nway_mf": [[0.939263, 0.512083], [0.808893, 0.274717], [0.610597, 0.243583], [0.856179, 0.279255],
                [0.913877, 0.478894]],
}
NWAY_PAIR = ["gpt-4-1106-preview", "mistralai/mistral-7b-chat"]


def test_every_committed_checkpoint_is_pinned():
    committed = sorted(p.name for p in default_checkpoint_dir().iterdir() if (p / "config.json").is_file())
    assert committed == sorted([*GOLDEN, *GOLDEN_NWAY]), "pin the golden scores of every committed checkpoint"


@pytest.mark.parametrize("name", sorted(GOLDEN_NWAY))
def test_golden_nway_qualities(name):
    from routers.nway.registry import load_quality_router

    q = load_quality_router(name).predict_for(PROMPTS, NWAY_PAIR)
    np.testing.assert_allclose(q, GOLDEN_NWAY[name], atol=2e-5,
                               err_msg=f"{name} now predicts {[[round(float(x), 6) for x in r] for r in q]}")


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_scores(name):
    scores = load_router(name).score(PROMPTS)
    np.testing.assert_allclose(scores, GOLDEN[name], atol=2e-5,
                               err_msg=f"{name} now scores {[round(float(x), 6) for x in scores]}")
