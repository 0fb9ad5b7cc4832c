"""Routing metrics of the paper (section 3.2), with explicit handling of tied router scores.

Given per-question router scores (higher = more likely to need the strong model) and per-question
quality of the strong and weak answers, routing the top fraction c of questions to the strong model
gives quality r(c); PGR(c) = (r(c) - r_weak) / (r_strong - r_weak) (Eq. 6).

Ties: questions with equal scores cannot be ordered by a threshold. We give every question in a tie
group the group's mean gain, which is the exact expected quality when the tie is broken at random,
so a constant router gets the random router's curve instead of an order-dependent one.
"""

from __future__ import annotations

import numpy as np


def _as_arrays(scores, strong, weak):
    scores = np.asarray(scores, dtype=np.float64)
    strong = np.asarray(strong, dtype=np.float64)
    weak = np.asarray(weak, dtype=np.float64)
    if not (scores.shape == strong.shape == weak.shape) or scores.ndim != 1 or scores.size == 0:
        raise ValueError(
            f"scores, strong and weak must be 1-D arrays of one non-zero length, got "
            f"{scores.shape}, {strong.shape}, {weak.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError("router scores contain NaN")
    return scores, strong, weak


def cumulative_gain(scores, strong, weak) -> np.ndarray:
    """G[k] = expected sum of (strong - weak) over the k highest-scored questions, k = 0..n,
    with ties broken at random (in expectation)."""
    scores, strong, weak = _as_arrays(scores, strong, weak)
    order = np.argsort(-scores, kind="stable")
    s_sorted = scores[order]
    d = (strong - weak)[order]
    # tie groups: mean gain within each run of equal scores
    boundaries = np.flatnonzero(np.diff(s_sorted) != 0) + 1
    starts = np.concatenate([[0], boundaries])
    sums = np.add.reduceat(d, starts)
    counts = np.diff(np.concatenate([starts, [len(d)]]))
    d_eq = np.repeat(sums / counts, counts)
    return np.concatenate([[0.0], np.cumsum(d_eq)])


def pgr_curve(scores, strong, weak, fractions) -> np.ndarray:
    """PGR at each strong-call fraction in ``fractions`` (values in [0, 1]), interpolated linearly
    between whole numbers of strong calls."""
    scores, strong, weak = _as_arrays(scores, strong, weak)
    n = len(scores)
    gap = strong.mean() - weak.mean()
    if gap == 0:
        raise ValueError("the strong and weak models score the same on this set: PGR is undefined")
    g = cumulative_gain(scores, strong, weak)
    k = np.clip(np.asarray(fractions, dtype=np.float64), 0.0, 1.0) * n
    return np.interp(k, np.arange(n + 1), g) / n / gap


def apgr(scores, strong, weak, n_grid: int = 101) -> float:
    """Area under PGR over the strong-call fraction on [0, 1] (Eq. 7), trapezoid rule on an even
    grid; a random router has APGR 0.5 in expectation."""
    grid = np.linspace(0.0, 1.0, n_grid)
    return float(np.trapezoid(pgr_curve(scores, strong, weak, grid), grid))
