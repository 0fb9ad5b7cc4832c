"""Cross-fitting's splits: identical and near-identical questions share a fold, folds balance."""

from __future__ import annotations

import numpy as np
import pytest

from routers.errors import ConfigError
from routers.evaluation.crossfit import fold_ids, near_duplicate_groups
from routers.features import text_features


def test_folds_group_identical_prompts_and_balance():
    prompts = ["a", "b", "a", "c", "d", "b", "e", "f"]
    f = fold_ids(prompts, 3, seed=1)
    assert f[0] == f[2] and f[1] == f[5]
    uniq_sizes = np.bincount([f[prompts.index(p)] for p in dict.fromkeys(prompts)], minlength=3)
    assert uniq_sizes.max() - uniq_sizes.min() <= 1
    with pytest.raises(ConfigError, match="k >= 2"):
        fold_ids(prompts, 1)
    with pytest.raises(ConfigError, match="distinct prompts"):
        fold_ids(["x", "x"], 2)


def test_near_duplicates_share_a_fold():
    e = np.eye(6, dtype=np.float32)
    e[3] = e[0] * 0.99 + e[5] * 0.14  # near e[0]
    e[3] /= np.linalg.norm(e[3])
    g = near_duplicate_groups(e, 0.95)
    assert g[0] == g[3] and len(set(g.tolist())) == 5
    prompts = [f"p{i}" for i in range(6)]
    for seed in range(5):
        f = fold_ids(prompts, 3, seed, groups=g)
        assert f[0] == f[3]


def test_text_features_shape_and_signal():
    x = text_features(["What is 12 + 7 * 3 = ?\nShow steps", "hello"])
    assert x.shape == (2, 5) and np.all(x[0] > x[1])
