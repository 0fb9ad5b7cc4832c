"""Length-controlled judge labels (routers.data.length_control) on a synthetic AlpacaEval folder
with a planted length bias: the fit finds it, and the controlled labels no longer follow length."""

import json

import numpy as np
import pandas as pd
import pytest

from routers.data.length_control import REFERENCE, length_controlled_labels
from routers.errors import DataError


def _write(tmp_path, n_ins=120, beta=2.0, seed=0, weak="weak-model"):
    rng = np.random.default_rng(seed)
    models = [weak, "other-a", "other-b", "other-c"]
    theta = {weak: -1.0, "other-a": -0.5, "other-b": -1.5, "other-c": 0.0}
    hard = rng.normal(0, 1, n_ins)  # instruction effect
    with open(tmp_path / "instructions.jsonl", "w") as f:
        for i in range(n_ins):
            f.write(json.dumps({"id": i, "dataset": "t", "instruction": f"instruction number {i}"}) + "\n")
    jud, lens = [], []
    for i in range(n_ins):
        ref_len = 1000
        lens.append((i, REFERENCE, ref_len, ref_len // 5))
        for mdl in models:
            gap = rng.normal(0, 800)
            p = 1 / (1 + np.exp(-(theta[mdl] + hard[i] + beta * np.tanh(gap / 800))))
            jud.append((i, REFERENCE, mdl, "annot", 2.0 if rng.random() < p else 1.0))
            lens.append((i, mdl, int(ref_len + gap), int((ref_len + gap) // 5)))
    pd.DataFrame(jud, columns=["instruction_id", "model_1", "model_2", "annotator", "preference"]).to_csv(
        tmp_path / "judgments.csv", index=False)
    pd.DataFrame(lens, columns=["instruction_id", "model", "output_chars", "output_words"]).to_csv(
        tmp_path / "output_lengths.csv", index=False)
    return tmp_path


def test_the_planted_length_bias_is_found_and_removed(tmp_path):
    labels = length_controlled_labels(_write(tmp_path), weak="weak-model")
    assert len(labels.prompts) == 120
    assert labels.beta > 0.8  # planted 2.0; L2 shrinks it
    gap = labels.length_gap_chars  # reference minus weak: a longer weak answer lowers P(reference better)
    raw_corr = np.corrcoef(labels.labels["raw"], gap)[0, 1]
    lc_corr = np.corrcoef(labels.labels["raw_lc"], gap)[0, 1]
    assert raw_corr > 0.3 and abs(lc_corr) < 0.6 * raw_corr  # binary outcomes keep some: only the expected effect goes
    assert abs(np.corrcoef(labels.labels["glm_lc"], gap)[0, 1]) < 0.3 < np.corrcoef(labels.labels["glm"], gap)[0, 1]
    for v in labels.labels.values():
        assert v.shape == (120,) and v.min() >= 0 and v.max() <= 1


def test_no_bias_planted_gives_a_small_slope(tmp_path):
    assert abs(length_controlled_labels(_write(tmp_path, beta=0.0), weak="weak-model").beta) < 0.5


def test_missing_lengths_or_weak_model_are_named(tmp_path):
    d = _write(tmp_path)
    with pytest.raises(DataError, match="no judgments of 'absent'"):
        length_controlled_labels(d, weak="absent")
    (d / "output_lengths.csv").unlink()
    with pytest.raises(DataError, match="output_lengths.csv"):
        length_controlled_labels(d, weak="weak-model")
