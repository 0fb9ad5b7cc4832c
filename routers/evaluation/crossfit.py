"""In-domain augmentation by k-fold cross-fitting, and the quick embedding router used to run it.

The paper augmented its training data with ~1,500 golden-labelled MMLU *validation* questions; we
have no validation split, only the benchmark's own per-question outcomes. Cross-fitting uses them
honestly: split the benchmark into k folds (identical prompt texts always share a fold, MMLU has
105 duplicated prompts), train on the golden labels of the other k-1 folds (+ the general data),
score the held-out fold with that router, and report the metrics on the full benchmark assembled
from the k out-of-fold scores. No question is ever scored by a router that saw its label.

``RidgeHead`` ("ridge" in reports) is a closed-form weighted ridge regression of P(strong better)
on [MiniLM embedding, log prompt length, five cheap text features (``text_features``), 1]: a fast, documented router configuration that makes
cross-fitting cheap enough to run on every evaluation. Any other trainer (e.g. the mf trainer)
plugs in through ``cross_fit(..., trainer=...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from routers.errors import ConfigError
from routers.features import length_feature, text_features  # noqa: F401  (re-exported for callers)

log = logging.getLogger(__name__)

#: A trainer takes (embeddings, prompts, targets in [0, 1], weights, eval_mask=rows to select
#: hyper-parameters on, or None) and returns a scorer (embeddings, prompts) -> scores (higher =
#: more likely to need the strong model).
Scorer = Callable[[np.ndarray, Sequence[str]], np.ndarray]
Trainer = Callable[..., Scorer]

#: Ridge penalties tried by the nested (inner) cross-validation of ``ridge_trainer(alpha="auto")``.
ALPHA_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def _mean_weight(w: np.ndarray) -> float:
    nz = w[w > 0]
    return float(nz.mean()) if nz.size else 1.0


@dataclass
class RidgeHead:
    """Weighted ridge regression on [embedding, length feature, 1]; the bias is not penalised.

    ``predict`` squashes the linear output with a logistic (monotone, so rankings and APGR are
    unchanged) to return values in (0, 1) without creating ties by clipping."""

    alpha: float = 1.0
    use_length: bool = True
    use_text: bool = True
    coef: np.ndarray | None = None

    def _features(self, emb: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        cols = [np.asarray(emb, dtype=np.float64)]
        if self.use_length:
            cols.append(length_feature(prompts)[:, None])
        if self.use_text:
            cols.append(text_features(prompts))
        cols.append(np.ones((len(prompts), 1)))
        return np.hstack(cols)

    def fit(self, emb: np.ndarray, prompts: Sequence[str], y: np.ndarray, w: np.ndarray | None = None) -> "RidgeHead":
        if self.alpha < 0:
            raise ConfigError(f"ridge alpha must be >= 0, got {self.alpha}")
        x = self._features(emb, prompts)
        y = np.asarray(y, dtype=np.float64)
        w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
        if not (len(x) == len(y) == len(w)) or len(y) == 0:
            raise ConfigError(f"ridge fit needs one non-zero length, got {len(x)}, {len(y)}, {len(w)}")
        xw = x * w[:, None]
        a = x.T @ xw
        reg = np.full(x.shape[1], self.alpha * _mean_weight(w))
        reg[-1] = 0.0
        a[np.diag_indices_from(a)] += reg
        self.coef = np.linalg.solve(a, xw.T @ y)
        return self

    def decision(self, emb: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        if self.coef is None:
            raise ConfigError("RidgeHead.predict called before fit")
        return self._features(emb, prompts) @ self.coef

    def predict(self, emb: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-8.0 * (self.decision(emb, prompts) - 0.5)))


def ranking_gain(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over the 11-point strong-call grid of the expected gain sum(target - 0.5) captured by
    routing the top-scored rows (ties in expectation): APGR times the gap, defined for any gap."""
    from routers.evaluation.metrics import REFERENCE_GRID, _interp_gain, cumulative_gain

    t = np.asarray(targets, dtype=np.float64)
    g = cumulative_gain(scores, t, np.full(len(t), 0.5))
    return float(np.trapezoid(_interp_gain(g, REFERENCE_GRID), REFERENCE_GRID)) / len(t)


#: Multipliers of the general data's weights tried by the nested CV when in-domain rows are present.
GENERAL_WEIGHT_GRID = (1.0, 0.3, 0.1, 0.0)


def select_ridge(emb, prompts, y, w, eval_mask=None, alphas=ALPHA_GRID, general_weights=GENERAL_WEIGHT_GRID,
                 k: int = 3, seed: int = 0, use_length: bool = True) -> tuple[float, float]:
    """Nested cross-validation on the training rows only: the (ridge penalty, general-data weight
    multiplier) whose inner k-fold out-of-fold scores capture the most gain on the ``eval_mask``
    rows (the in-domain rows; default all rows, and then the multiplier is 1). Returns
    ``(alpha, general_weight)``."""
    prompts = list(prompts)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    mask = np.ones(len(y), dtype=bool) if eval_mask is None else np.asarray(eval_mask, dtype=bool)
    if mask.all():
        general_weights = (1.0,)
    idx = np.flatnonzero(mask)
    if len(set(prompts[i] for i in idx)) < 2 * k:
        return 1.0, 1.0
    x = RidgeHead(use_length=use_length)._features(emb, prompts)
    d = x.shape[1]
    xw = x * w[:, None]
    gen = ~mask
    g_gen, b_gen = x[gen].T @ xw[gen], xw[gen].T @ y[gen]
    inner = fold_ids([prompts[i] for i in idx], k, seed + 1)
    folds = []
    for f in range(k):
        tr = idx[inner != f]
        folds.append((x[tr].T @ xw[tr], xw[tr].T @ y[tr], w[tr], idx[inner == f]))
    best, choice = -np.inf, (alphas[0], general_weights[0])
    for gw in general_weights:
        for a in alphas:
            oof = np.empty(len(y))
            for g_in, b_in, w_in, test in folds:
                mw = _mean_weight(np.concatenate([gw * w[gen], w_in]))
                mat = gw * g_gen + g_in
                mat[np.diag_indices(d - 1)] += a * mw  # the bias (last column) is not penalised
                coef = np.linalg.solve(mat, gw * b_gen + b_in)
                oof[test] = x[test] @ coef
            gain = ranking_gain(oof[idx], y[idx])
            if gain > best + 1e-12:
                best, choice = gain, (float(a), float(gw))
    return choice


def ridge_trainer(alpha: float | str = "auto", use_length: bool = True, alphas=ALPHA_GRID,
                  general_weights=GENERAL_WEIGHT_GRID) -> Trainer:
    """A trainer for ``cross_fit``. ``alpha="auto"`` picks the penalty and, when in-domain rows
    are marked by ``eval_mask``, the general data's weight multiplier, by nested cross-validation
    on the training rows only (``chosen`` records each fit's (alpha, general weight))."""
    def train(emb, prompts, y, w, eval_mask=None):
        w = np.asarray(w, dtype=np.float64)
        if alpha == "auto":
            a, gw = select_ridge(emb, prompts, y, w, eval_mask, alphas, general_weights, use_length=use_length)
        else:
            a, gw = float(alpha), 1.0
        if eval_mask is not None and gw != 1.0:
            w = np.where(np.asarray(eval_mask, dtype=bool), w, gw * w)
        keep = w > 0
        head = RidgeHead(alpha=a, use_length=use_length).fit(emb[keep], [p for p, k in zip(prompts, keep) if k],
                                                             np.asarray(y)[keep], w[keep])
        train.chosen.append((a, gw))
        return head.predict
    train.chosen = []
    return train


def indomain_targets(strong: np.ndarray, weak: np.ndarray, score_range: float) -> np.ndarray:
    """P(strong better)-like target from golden outcomes: 0.5 + (strong - weak) / (2 * range),
    i.e. 1 / 0.5 / 0 for correctness (range 1), graded for MT Bench (range 9 on a 1-10 scale)."""
    if score_range <= 0:
        raise ConfigError(f"score range must be > 0, got {score_range}")
    d = (np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64)) / (2 * score_range)
    return np.clip(0.5 + d, 0.0, 1.0)


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


def cross_fit(
    trainer: Trainer,
    emb: np.ndarray,
    prompts: Sequence[str],
    targets: np.ndarray,
    k: int = 5,
    seed: int = 0,
    general: tuple[np.ndarray, Sequence[str], np.ndarray, np.ndarray] | None = None,
    indomain_weight: float = 1.0,
    progress: bool = False,
    groups: Sequence | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold scores for every question, and the fold of each.

    For fold f: train ``trainer`` on the in-domain rows outside f (weight ``indomain_weight``)
    plus ``general`` = (embeddings, prompts, targets, weights) if given; score the rows in f."""
    prompts = list(prompts)
    targets = np.asarray(targets, dtype=np.float64)
    if not (len(emb) == len(prompts) == len(targets)):
        raise ConfigError(f"cross_fit: {len(emb)} embeddings, {len(prompts)} prompts, {len(targets)} targets")
    folds = fold_ids(prompts, k, seed, groups)
    out = np.full(len(prompts), np.nan)
    it = range(k)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="cross-fit folds", unit="fold")
    for f in it:
        test = folds == f
        tr = ~test
        x, p, y = emb[tr], [prompts[i] for i in np.flatnonzero(tr)], targets[tr]
        w = np.full(int(tr.sum()), float(indomain_weight))
        mask = np.ones(len(y), dtype=bool)
        if general is not None:
            g_emb, g_prompts, g_y, g_w = general
            x = np.vstack([g_emb, x])
            p = list(g_prompts) + p
            y = np.concatenate([np.asarray(g_y, dtype=np.float64), y])
            w = np.concatenate([np.asarray(g_w, dtype=np.float64), w])
            mask = np.concatenate([np.zeros(len(g_y), dtype=bool), mask])
        scorer = trainer(x, p, y, w, eval_mask=mask)
        out[test] = scorer(emb[test], [prompts[i] for i in np.flatnonzero(test)])
    return out, folds
