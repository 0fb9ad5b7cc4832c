"""Reference rows of every results table: the random router with its 95% interval (repeated
random routing, paper Table 1's first row), the prompt-length baseline and the oracle."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from routers.errors import ConfigError
from routers.evaluation import metrics as m


def random_baseline(strong, weak, n_trials: int = 1000, seed: int = 0, n_grid: int = 11,
                    level: float = 0.95) -> dict:
    """Route with fresh uniform random scores ``n_trials`` times; return the mean and the central
    ``level`` interval of APGR, CPT(50%), CPT(80%), and per grid point the PGR / quality band.

    Every trial is a random permutation (no ties), scored with the same metrics as any router."""
    if n_trials < 2:
        raise ConfigError(f"random baseline needs n_trials >= 2, got {n_trials}")
    strong = np.asarray(strong, dtype=np.float64)
    weak = np.asarray(weak, dtype=np.float64)
    grid = np.linspace(0.0, 1.0, n_grid)
    n = len(strong)
    gap = float(strong.mean() - weak.mean())
    if gap == 0:
        raise ValueError("the strong and weak models score the same on this set: PGR is undefined")
    d = strong - weak
    rng = np.random.default_rng(seed)
    k = grid * n
    pgr = np.empty((n_trials, n_grid))
    for t in range(n_trials):
        g = np.concatenate([[0.0], np.cumsum(d[rng.permutation(n)])])
        pgr[t] = np.interp(k, np.arange(n + 1), g) / n / gap
    apgrs = np.trapezoid(pgr, grid, axis=1)
    cpt50 = np.array([m.cpt_from_curve(p, grid, 0.5) for p in pgr])
    cpt80 = np.array([m.cpt_from_curve(p, grid, 0.8) for p in pgr])
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2

    def band(x):
        lo, hi = np.quantile(x, [lo_q, hi_q])
        return {"mean": float(np.mean(x)), "lo": float(lo), "hi": float(hi)}

    qual = weak.mean() + pgr * gap
    return {
        "n_trials": int(n_trials),
        "level": level,
        "apgr": band(apgrs),
        "cpt50": band(cpt50),
        "cpt80": band(cpt80),
        "grid": grid.tolist(),
        "pgr_mean": pgr.mean(axis=0).tolist(),
        "quality_lo": np.quantile(qual, lo_q, axis=0).tolist(),
        "quality_hi": np.quantile(qual, hi_q, axis=0).tolist(),
        "quality_mean": qual.mean(axis=0).tolist(),
    }


def length_scores(prompts: Sequence[str]) -> np.ndarray:
    """The prompt-length baseline: longer prompts to the strong model. Uses the project's
    ``LengthRouter`` when present (a monotone map of the length, so the ranking is the same)."""
    try:
        from routers.models.length import LengthRouter

        return LengthRouter().score(list(prompts))
    except ImportError:  # pragma: no cover - the router lands in a sibling issue
        return np.array([len(p) for p in prompts], dtype=np.float64)
