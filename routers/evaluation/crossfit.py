"""Cross-fitting's splits: questions into k folds, near-duplicates always together.

The paper augmented its training data with ~1,500 golden-labelled MMLU *validation* questions; we
have no validation split, only the benchmark's own per-question outcomes. Cross-fitting uses them
honestly: split the benchmark into k folds (identical and near-identical prompt texts always share
a fold; MMLU has 105 duplicated prompts), train on the golden labels of the other k-1 folds, score
the held-out fold with that router, and report on the full benchmark assembled from the k
out-of-fold scores (``routers.evaluation.protocol``). No question is ever scored by a router that
saw its label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from routers.errors import ConfigError


def near_duplicate_groups(emb: np.ndarray, threshold: float = 0.95, block: int = 1024) -> np.ndarray:
    """Group id per row: rows joined (transitively) when their cosine is >= ``threshold``, so
    near-identical questions never sit on both sides of a cross-fitting split."""
    emb = np.asarray(emb, dtype=np.float32)
    n = len(emb)
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, n, block):
        sims = emb[start:start + block] @ emb.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows + start, cols):
            if c > r:
                a, b = find(r), find(c)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(n)])


def fold_ids(prompts: Sequence[str], k: int, seed: int = 0, groups: Sequence | None = None) -> np.ndarray:
    """Fold index (0..k-1) per question; identical prompt texts (and rows sharing a ``groups``
    id, e.g. from ``near_duplicate_groups``) share a fold; folds differ in size by at most one
    group."""
    if k < 2:
        raise ConfigError(f"cross-fitting needs k >= 2 folds, got {k}")
    if groups is None:
        keys = list(prompts)
    else:
        # identical texts always share a group, whatever ``groups`` says
        first: dict[str, object] = {}
        keys = [first.setdefault(p, g) for p, g in zip(prompts, groups)]
    uniq = list(dict.fromkeys(keys))
    if len(uniq) < k:
        raise ConfigError(f"cannot split {len(uniq)} distinct prompts into {k} folds")
    perm = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {uniq[j]: i % k for i, j in enumerate(perm)}
    return np.array([fold_of[key] for key in keys], dtype=np.int64)
