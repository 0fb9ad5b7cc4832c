"""The causal_llm router end to end on CPU with a tiny randomly initialised Llama and a word-level
tokenizer trained here: full and LoRA fine-tuning recover a known signal, label tokens are added
to the vocabulary, checkpoints round-trip, batching does not change scores, bad checkpoints fail
with CheckpointError."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routers.errors import CheckpointError, ConfigError
from routers.evaluation.metrics import apgr
from routers.registry import load_router
from tests.fakes import synthetic_benchmark, synthetic_preferences
from tests.unit.test_bert_router import labelled

# A short template keeps sequences (and CPU time) small; the default one is tested for shape below.
TEMPLATE = "Query: {query}\nWinner:"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from tests.unit.tiny_hf import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def frame():
    return labelled(synthetic_preferences(300, seed=0))


@pytest.fixture(scope="module")
def full(tiny_base, frame, tmp_path_factory):
    from routers.training.causal_llm import train_causal_llm

    out = tmp_path_factory.mktemp("llm-full")
    return train_causal_llm(frame, out, base=str(tiny_base), epochs=3, lr=3e-3, batch_size=16, max_length=24,
                            template=TEMPLATE, val_fraction=0.1, seed=0, show_progress=False)


@pytest.fixture(scope="module")
def lora(tiny_base, frame, tmp_path_factory):
    from routers.training.causal_llm import LoraSpec, train_causal_llm

    out = tmp_path_factory.mktemp("llm-lora")
    return train_causal_llm(frame, out, base=str(tiny_base), lora=LoraSpec(r=8, alpha=128, dropout=0.0),
                            epochs=6, lr=3e-3, batch_size=16, max_length=24, template=TEMPLATE,
                            val_fraction=0.1, seed=0, show_progress=False)


def held_out_apgr(router) -> float:
    prompts, strong, weak = synthetic_benchmark(200, seed=1)
    scores = router.score(prompts)
    assert scores.shape == (200,) and np.all((scores >= 0) & (scores <= 1))
    return apgr(scores, strong, weak)


def test_full_finetuning_recovers_signal(full):
    router = load_router(full.checkpoint)
    value = held_out_apgr(router)
    # random routing gives 0.5 in expectation; the perfect hard/easy split ~0.8
    assert value > 0.62, f"held-out APGR {value:.3f} is not clearly above random (0.5)"
    assert full.metrics["lora"] is False and full.metrics["steps"] > 0
    assert json.loads((full.checkpoint / "config.json").read_text())["weights"] == "full"


def test_lora_trains_and_loads(lora, tiny_base):
    cfg = json.loads((lora.checkpoint / "config.json").read_text())
    assert cfg["weights"] == "lora" and cfg["base"] == str(tiny_base)
    assert (lora.checkpoint / "adapter" / "adapter_config.json").is_file()
    assert not (lora.checkpoint / "model").exists()  # only the adapter is stored
    merged = load_router(lora.checkpoint)
    unmerged = load_router(lora.checkpoint, merge=False)
    # LoRA on a *random* base learns slower than full fine-tuning (few trainable weights, and the
    # frozen random layers carry little of the query to the answer position): smaller margin.
    assert held_out_apgr(merged) > 0.6
    probe = ["Prove the theorem?", "Hello, favorite movie?"]
    np.testing.assert_allclose(merged.score(probe), unmerged.score(probe), atol=1e-5)


def test_label_tokens_added_and_probabilities(full):
    router = load_router(full.checkpoint)
    label_ids = router.tokenizer.convert_tokens_to_ids(router.label_tokens)
    assert len(set(label_ids)) == 3
    assert router.model.get_input_embeddings().num_embeddings >= len(router.tokenizer)
    for tok in router.label_tokens:  # each label is one token, never split
        assert router.tokenizer.tokenize(tok) == [tok]
    probs = router.predict_proba(["Prove the lemma?", "Thanks!"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_save_load_identical_and_batched_equals_single(full, tmp_path):
    router = load_router(full.checkpoint)
    prompts = ["hi", "Prove the theorem about the matrix eigenvalue " * 10, "What is your favorite song?",
               "Explain the algorithm complexity?"]
    batched = router.score(prompts)
    single = np.array([router.score([p])[0] for p in prompts])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    router.save(tmp_path / "again")
    np.testing.assert_array_equal(load_router(tmp_path / "again").score(prompts), batched)


def test_truncation_keeps_the_template(full):
    router = load_router(full.checkpoint)
    enc = router.encode(["word " * 500])
    assert enc["input_ids"].shape[1] == router.max_length == 24
    tail = router.tokenizer(TEMPLATE.split("{query}")[1], add_special_tokens=False)["input_ids"]
    assert enc["input_ids"][0, -len(tail):].tolist() == tail  # the answer cue survives truncation


def test_default_template_and_bad_config(tiny_base):
    from routers.models.causal_llm import CausalLLMRouter

    router = CausalLLMRouter.from_base(str(tiny_base), max_length=256)
    assert router.score(["Hello?", "Prove it?"]).shape == (2,)
    with pytest.raises(ConfigError, match="query"):
        CausalLLMRouter.from_base(str(tiny_base), template="no placeholder")
    with pytest.raises(ConfigError, match="max_length"):
        CausalLLMRouter.from_base(str(tiny_base), max_length=3)


def test_missing_and_malformed_checkpoints(tmp_path, tiny_base):
    from routers.models.causal_llm import CausalLLMRouter

    with pytest.raises(CheckpointError, match="absent"):
        CausalLLMRouter.load(tmp_path / "absent")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"router": "causal_llm", "weights": "full"}))
    with pytest.raises(CheckpointError, match="bad"):
        load_router(bad)
    (bad / "config.json").write_text(json.dumps({"router": "causal_llm", "weights": "lora"}))
    with pytest.raises(CheckpointError, match="bad"):
        load_router(bad)
    (bad / "config.json").write_text(json.dumps({"router": "causal_llm", "weights": "other"}))
    with pytest.raises(CheckpointError, match="weights"):
        load_router(bad)
    with pytest.raises(CheckpointError, match="nowhere"):
        CausalLLMRouter.from_base(str(tmp_path / "nowhere"))
