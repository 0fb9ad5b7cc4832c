"""Routing metrics of the paper (section 3.2), with explicit handling of tied router scores.

Definitions (paper Eq. 4-8, RouteLLM ``routellm/evals/evaluate.py``):

- c  (Eq. 4): fraction of questions routed to the strong model, ``strong_mask(scores, α)``.
- r  (Eq. 5): mean quality of the routed answers.
- PGR (Eq. 6): (r - r_weak) / (r_strong - r_weak).
- APGR (Eq. 7): area under PGR over c in [0, 1]. Like the reference implementation, we evaluate the
  call-performance graph at the 11 strong-call fractions 0, 10 %, ..., 100 % (the reference's
  ``pd.qcut(scores, 10)`` thresholds) and integrate with the trapezoid rule, so a random router
  scores 0.5. (Eq. 8's plain mean of 10 points would give a random router 0.55; the paper's
  published random rows, 0.500 / 0.497, come from the trapezoid.)
- CPT(x) : the minimum strong-call fraction whose PGR reaches x, read off the same 11-point graph
  by linear interpolation (the reference's ``np.interp``; for a curve that is not monotone we take
  the first crossing, which is the "minimum" the paper defines and where ``np.interp`` is undefined).
- AUC : area under the quality curve r(c), c in [0, 1] (the reference's ``auc_metric``).
- oracle : the best achievable quality with at most c strong calls: route the questions where the
  strong model beats the weak one, biggest gain first (the reference's ``get_optimal_accuracy``).

Deliberate difference from the reference: the reference evaluates each grid point at the strong-
call percentage its quantile threshold happens to realise (within one question of the nominal
value when scores are distinct); we evaluate exactly at the nominal fraction, interpolating
linearly between whole numbers of strong calls. ``reference_apgr`` ports the reference procedure
literally; the tests check both agree to O(1/n).

Ties: questions with equal scores cannot be separated by any threshold, so a deterministic router
can only realise strong-call fractions at tie-group boundaries. Between two boundaries we
interpolate linearly, which is the exact expected quality when ties are broken at random (each
member of a tie group gets the group's mean gain). A constant router therefore gets the random
router's expected curve (APGR 0.5) instead of an order-dependent one, and the reported c of a
threshold is the realised ``strong_mask`` fraction, never a nominal one.
"""

from __future__ import annotations

import numpy as np

from routers.base import strong_mask

#: The reference's call-performance grid: 0 %, 10 %, ..., 100 % strong calls.
REFERENCE_GRID = np.linspace(0.0, 1.0, 11)


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
    if np.isnan(strong).any() or np.isnan(weak).any():
        raise ValueError("strong / weak quality scores contain NaN")
    return scores, strong, weak


def _gap(strong, weak) -> float:
    gap = float(np.mean(strong) - np.mean(weak))
    if gap == 0:
        raise ValueError("the strong and weak models score the same on this set: PGR is undefined")
    return gap


# --- Eq. 4-6 at a threshold ------------------------------------------------------------------------


def strong_fraction(scores, threshold: float) -> float:
    """c (Eq. 4): the realised fraction of questions with P(strong) >= threshold."""
    return float(np.mean(strong_mask(scores, threshold)))


def quality_at_threshold(scores, strong, weak, threshold: float) -> float:
    """r (Eq. 5): mean quality when routing with ``strong_mask(scores, threshold)``."""
    scores, strong, weak = _as_arrays(scores, strong, weak)
    return float(np.mean(np.where(strong_mask(scores, threshold), strong, weak)))


def pgr_at_threshold(scores, strong, weak, threshold: float) -> float:
    """PGR (Eq. 6) of routing with ``strong_mask(scores, threshold)``."""
    scores, strong, weak = _as_arrays(scores, strong, weak)
    r = quality_at_threshold(scores, strong, weak, threshold)
    return (r - float(np.mean(weak))) / _gap(strong, weak)


# --- the call-performance graph ----------------------------------------------------------------------


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


def _interp_gain(g: np.ndarray, fractions) -> np.ndarray:
    n = len(g) - 1
    k = np.clip(np.asarray(fractions, dtype=np.float64), 0.0, 1.0) * n
    return np.interp(k, np.arange(n + 1), g)


def pgr_curve(scores, strong, weak, fractions) -> np.ndarray:
    """PGR at each strong-call fraction in ``fractions`` (values in [0, 1]), interpolated linearly
    between whole numbers of strong calls."""
    scores, strong, weak = _as_arrays(scores, strong, weak)
    g = cumulative_gain(scores, strong, weak)
    return _interp_gain(g, fractions) / len(scores) / _gap(strong, weak)


def quality_curve(scores, strong, weak, fractions) -> np.ndarray:
    """r(c): mean routed quality at each strong-call fraction (same interpolation as pgr_curve)."""
    scores, strong, weak = _as_arrays(scores, strong, weak)
    g = cumulative_gain(scores, strong, weak)
    return float(np.mean(weak)) + _interp_gain(g, fractions) / len(scores)


def oracle_gain(strong, weak) -> np.ndarray:
    """The optimal router's G[k]: the k largest positive gains (never a call that loses quality),
    k = 0..n."""
    strong = np.asarray(strong, dtype=np.float64)
    weak = np.asarray(weak, dtype=np.float64)
    d = np.sort(np.maximum(strong - weak, 0.0))[::-1]
    return np.concatenate([[0.0], np.cumsum(d)])


def oracle_pgr_curve(strong, weak, fractions) -> np.ndarray:
    """PGR of the oracle ("optimal") router with at most c strong calls, at each fraction."""
    _as_arrays(np.zeros(len(strong)), strong, weak)
    return _interp_gain(oracle_gain(strong, weak), fractions) / len(strong) / _gap(strong, weak)


def oracle_quality_curve(strong, weak, fractions) -> np.ndarray:
    _as_arrays(np.zeros(len(strong)), strong, weak)
    return float(np.mean(weak)) + _interp_gain(oracle_gain(strong, weak), fractions) / len(strong)


# --- summary metrics ----------------------------------------------------------------------------------


def _grid(n_grid: int) -> np.ndarray:
    if int(n_grid) < 2:
        raise ValueError(f"n_grid must be >= 2, got {n_grid!r}")
    return np.linspace(0.0, 1.0, int(n_grid))


def apgr_from_curve(pgr: np.ndarray, grid: np.ndarray) -> float:
    return float(np.trapezoid(pgr, grid))


def cpt_from_curve(pgr: np.ndarray, grid: np.ndarray, target: float) -> float:
    """Minimum c with PGR(c) >= target on the piecewise-linear graph (first crossing)."""
    pgr = np.asarray(pgr, dtype=np.float64)
    hit = np.flatnonzero(pgr >= target - 1e-12)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(grid[0])
    x0, x1, y0, y1 = grid[i - 1], grid[i], pgr[i - 1], pgr[i]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0)) if y1 != y0 else float(x1)


def apgr(scores, strong, weak, n_grid: int = 11) -> float:
    """APGR (Eq. 7): trapezoid area under PGR over the strong-call fraction on an even grid of
    ``n_grid`` points in [0, 1] (default 11, the reference's); a random router scores 0.5."""
    grid = _grid(n_grid)
    return apgr_from_curve(pgr_curve(scores, strong, weak, grid), grid)


def cpt(scores, strong, weak, target: float, n_grid: int = 11) -> float:
    """CPT(target) as a fraction in [0, 1]: the minimum strong-call fraction whose PGR reaches
    ``target`` (e.g. 0.5 for CPT(50%)), interpolated on the ``n_grid``-point graph."""
    grid = _grid(n_grid)
    return cpt_from_curve(pgr_curve(scores, strong, weak, grid), grid, target)


def auc(scores, strong, weak, n_grid: int = 11) -> float:
    """Area under the quality curve r(c) for c in [0, 1], in the benchmark's score units."""
    grid = _grid(n_grid)
    return float(np.trapezoid(quality_curve(scores, strong, weak, grid), grid))


def oracle_apgr(strong, weak, n_grid: int = 11) -> float:
    grid = _grid(n_grid)
    return apgr_from_curve(oracle_pgr_curve(strong, weak, grid), grid)


def summarize(scores, strong, weak, n_grid: int = 11) -> dict:
    """All summary metrics of one router on one benchmark (fractions in [0, 1])."""
    grid = _grid(n_grid)
    pgr = pgr_curve(scores, strong, weak, grid)
    return {
        "apgr": apgr_from_curve(pgr, grid),
        "cpt50": cpt_from_curve(pgr, grid, 0.5),
        "cpt80": cpt_from_curve(pgr, grid, 0.8),
        "auc": float(np.trapezoid(quality_curve(scores, strong, weak, grid), grid)),
        "grid": grid.tolist(),
        "pgr": pgr.tolist(),
    }


def reference_apgr(scores, strong, weak, num_results: int = 10) -> dict:
    """A literal port of RouteLLM's procedure, for cross-checking: thresholds at the
    ``num_results``-quantiles of the scores (``pd.qcut`` bin edges), ``>=`` for every edge but the
    last (``>``), quality in %, trapezoid over the realised strong-call %, APGR normalised by the
    realised span; CPT by ``np.interp`` of the target quality."""
    scores, strong, weak = _as_arrays(scores, strong, weak)
    edges = np.quantile(scores, np.linspace(0, 1, num_results + 1))
    pct, acc = [], []
    for i, t in enumerate(edges):
        sel = scores >= t if i != len(edges) - 1 else scores > t
        pct.append(100.0 * sel.mean())
        acc.append(100.0 * np.where(sel, strong, weak).mean())
    order = np.argsort(pct, kind="stable")
    pct, acc = np.asarray(pct)[order], np.asarray(acc)[order]
    s_acc, w_acc = 100.0 * strong.mean(), 100.0 * weak.mean()
    area = np.trapezoid(acc, pct / 100)
    span = (pct[-1] - pct[0]) / 100
    out = {"apgr": float((area - w_acc * span) / (s_acc * span - w_acc * span)), "auc": float(area)}
    for x in (0.5, 0.8):
        out[f"cpt{int(x * 100)}"] = float(np.interp(x * (s_acc - w_acc) + w_acc, acc, pct)) / 100
    return out
