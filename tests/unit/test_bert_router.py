"""The bert router end to end on CPU with a tiny randomly initialised BERT (tokenizer trained here):
training recovers a known signal, checkpoints round-trip, batching does not change scores, bad
checkpoints fail with CheckpointError."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from routers.errors import CheckpointError, ConfigError, DataError
from routers.evaluation.metrics import apgr
from routers.registry import load_router
from tests.fakes import STRONG_MODELS, WEAK_MODELS, synthetic_benchmark, synthetic_preferences


def labelled(prefs: pd.DataFrame) -> pd.DataFrame:
    """Strong-vs-weak rows of a canonical preference frame as (prompt, label, weight)."""
    rows = []
    for r in prefs.itertuples():
        if r.model_a in STRONG_MODELS and r.model_b in WEAK_MODELS:
            p_strong = 1.0 - r.p_b_wins
        elif r.model_b in STRONG_MODELS and r.model_a in WEAK_MODELS:
            p_strong = r.p_b_wins
        else:
            continue
        label = "tie" if r.tie else ("strong" if p_strong > 0.5 else "weak")
        rows.append((r.prompt, label, r.weight))
    return pd.DataFrame(rows, columns=["prompt", "label", "weight"])


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A 2-layer, 32-wide BERT with random weights and a word-level tokenizer trained here."""
    from tests.unit.tiny_hf import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    from routers.training.bert import train_bert

    out = tmp_path_factory.mktemp("bert-ckpt")
    frame = labelled(synthetic_preferences(400, seed=0))
    result = train_bert(frame, out, base=str(tiny_base), epochs=4, lr=3e-3, batch_size=16, max_length=32,
                        val_fraction=0.1, seed=0, show_progress=False)
    return result


def test_training_recovers_signal(trained):
    m = trained.metrics
    assert m["val_prompts"] > 0 and m["steps"] > 0
    router = load_router(trained.checkpoint)
    prompts, strong, weak = synthetic_benchmark(300, seed=1)
    scores = router.score(prompts)
    assert scores.shape == (300,) and np.all((scores >= 0) & (scores <= 1))
    value = apgr(scores, strong, weak)
    # random routing gives 0.5 in expectation; a perfect hard/easy split gives ~0.8 here
    assert value > 0.65, f"held-out APGR {value:.3f} is not clearly above random (0.5)"
    assert m["val_accuracy"] > 0.5  # always-"strong" scores ~0.475 on this data


def test_summary_line_and_metrics(trained, capsys):
    line = trained.summary_line()
    assert line.startswith("[train bert]") and "val_loss=" in line and "val_accuracy=" in line


def test_save_load_identical_and_batched_equals_single(trained, tmp_path):
    router = load_router(trained.checkpoint)
    prompts = ["hi", "Prove the theorem about the eigenvalue of this matrix please, " * 8, "What is your favorite song?"]
    batched = router.score(prompts)
    single = np.array([router.score([p])[0] for p in prompts])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    router.save(tmp_path / "again")
    again = load_router(tmp_path / "again")
    np.testing.assert_array_equal(again.score(prompts), batched)
    # a long prompt is truncated at max_length rather than crashing past the position table
    assert router.max_length == 32
    assert again.describe()["name"] == "bert"


def test_probabilities_are_three_way(trained):
    router = load_router(trained.checkpoint)
    probs = router.predict_proba(["Hello, nice weather today?", "Prove the lemma on the polynomial?"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(router.score(["Hello, nice weather today?"])[0],
                               1 - probs[0, 1] - probs[0, 2], atol=1e-6)


def test_missing_and_malformed_checkpoints(trained, tmp_path):
    from routers.models.bert import BertClassifierRouter

    with pytest.raises(CheckpointError, match="nope"):
        BertClassifierRouter.load(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"router": "bert", "labels": ["strong", "tie", "weak"]}))
    with pytest.raises(CheckpointError, match="broken"):
        load_router(broken)
    (broken / "model").mkdir()
    (broken / "model" / "config.json").write_text("{}")
    (broken / "model" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="broken"):
        load_router(broken)


def test_bad_input_raises_named_errors(trained):
    router = load_router(trained.checkpoint)
    with pytest.raises(ConfigError):
        router.score("a single string")
    from routers.training.classifier_loop import check_labelled_frame

    with pytest.raises(DataError, match="label"):
        check_labelled_frame(pd.DataFrame({"prompt": ["x"], "label": ["maybe"]}))
    with pytest.raises(DataError, match="columns"):
        check_labelled_frame(pd.DataFrame({"prompt": ["x"]}))


def test_aggregation_matches_row_objective():
    """Merging duplicate prompts into soft targets keeps the weighted row-level objective."""
    from routers.training.classifier_loop import aggregate

    frame = pd.DataFrame({"prompt": ["a", "a", "b", "a"], "label": ["strong", "weak", "tie", "strong"],
                          "weight": [1.0, 2.0, 1.0, 1.0]})
    ex = aggregate(frame)
    assert ex.prompts == ["a", "b"]
    np.testing.assert_allclose(ex.targets[0], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(ex.weights, [4.0, 1.0])


def test_trained_model_beats_the_label_prior(trained):
    """The summary carries the constant-predictor baseline, and training beats it on the signal."""
    m = trained.metrics
    assert "prior_val_loss" in m and m["val_loss"] < m["prior_val_loss"]


def test_num_layers_keeps_the_first_layers_and_round_trips(tiny_base, tmp_path):
    """``num_layers`` builds only the base's first k layers, with their pretrained weights, and a
    checkpoint of the smaller model loads back as that model."""
    from routers.models.bert import BertClassifierRouter

    full = BertClassifierRouter.from_base(str(tiny_base), max_length=32, seed=0)
    small = BertClassifierRouter.from_base(str(tiny_base), max_length=32, seed=0, num_layers=1)
    assert full.describe()["layers"] == 2 and small.describe()["layers"] == 1
    assert small.describe()["parameters"] < full.describe()["parameters"]
    w_full = full.model.base_model.encoder.layer[0].attention.self.query.weight
    w_small = small.model.base_model.encoder.layer[0].attention.self.query.weight
    assert torch.equal(w_full, w_small)  # layer 0 is the base's, not a fresh one
    prompts = ["what is 2+2", "write a poem about the sea", "explain quicksort"]
    small.save(tmp_path / "l1")
    loaded = load_router(tmp_path / "l1")
    assert loaded.describe()["layers"] == 1
    np.testing.assert_allclose(loaded.score(prompts), small.score(prompts), atol=1e-6)


@pytest.mark.parametrize("bad", [0, 3, -1, 1.5, True])
def test_num_layers_out_of_range_is_a_config_error(tiny_base, bad):
    from routers.models.bert import BertClassifierRouter

    with pytest.raises(ConfigError, match=r"num_layers must be an integer in \[1, 2\].*got " + repr(bad).replace(".", r"\.")):
        BertClassifierRouter.from_base(str(tiny_base), num_layers=bad)
