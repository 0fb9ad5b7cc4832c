"""RouterBench's AIQ and the cost–quality hull it is computed on (pure numpy, no data).

RouterBench (Hu et al. 2024, "RouterBench: A Benchmark for Multi-LLM Routing System",
arXiv 2403.12031) scores a router by its cost–quality points (one per setting of its knob, here
λ). Two routers can be mixed at random per query, so every point on a segment between two points
is reachable: the router's achievable curve is the *upper convex hull* of its points; paying more
never has to lower quality, so the curve is made *non-decreasing* (flat after its best point).
AIQ is that curve's mean height over a cost range,

    AIQ = 1 / (c_max − c_min) · ∫_{c_min}^{c_max} R̃(c) dc,

with [c_min, c_max] = [cheapest single model's mean cost, priciest single model's mean cost]. The
"Zero router" is the hull of the single models' points (random mixes of fixed models, no
prompt information).

RouterBench's reference code (github.com/withmartian/routerbench, ``evaluation/AIQ.py``) builds
the same non-decreasing hull, extends it flat to the largest cost of the routers compared and
divides its area (from each router's cheapest point on) by that largest cost, i.e. it normalises
over [0, c_max]; we follow the paper's [c_min, c_max] as issue 19 asks. The two differ by a
constant factor (c_max − c_min) / c_max for routers that start at c_min, so orderings agree.

Below a router's cheapest point nothing is reachable: ``aiq`` counts R̃ as 0
there; the evaluation (``routers.evaluation.nway``) adds the cheapest single model's point to every
router's points (a random share of queries can always go there), so that case does not arise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from routers.errors import ConfigError


def _points(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if p.shape[0] == 0 or not np.isfinite(p).all():
        raise ConfigError("cost–quality points must be a non-empty list of finite (cost, quality) pairs, "
                          f"got {p.tolist()[:5]}")
    return p


def hull(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Vertices (k, 2) of the non-decreasing upper convex hull, cheapest first: starts at the
    best-quality point of the lowest cost and ends at the best quality reached (at its lowest cost)."""
    p = _points(points)
    # best quality per cost, then keep only points that raise quality as cost grows
    p = p[np.lexsort((-p[:, 1], p[:, 0]))]
    keep, best = [], -np.inf
    for c, q in p:
        if q > best:
            keep.append((c, q))
            best = q
    # upper hull of the remaining (increasing in both) points: drop any point on or below a chord
    out: list[tuple[float, float]] = []
    for c, q in keep:
        while len(out) >= 2:
            (c1, q1), (c2, q2) = out[-2], out[-1]
            if (q2 - q1) * (c - c1) <= (q - q1) * (c2 - c1):   # (c2, q2) not above the chord
                out.pop()
            else:
                break
        out.append((c, q))
    return np.array(out)


def hull_quality(vertices: np.ndarray, cost: np.ndarray | float) -> np.ndarray:
    """R̃(c): the hull's quality at each cost; NaN below its cheapest vertex, flat after its last."""
    v = np.asarray(vertices, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    q = np.interp(c, v[:, 0], v[:, 1]) if len(v) > 1 else np.full(c.shape, v[0, 1])
    return np.where(c < v[0, 0], np.nan, q)


def aiq(points: Sequence[Sequence[float]] | np.ndarray, c_min: float, c_max: float) -> float:
    """Mean of R̃ over [c_min, c_max] (exact: R̃ is piecewise linear); 0 where unreachable."""
    if not (np.isfinite(c_min) and np.isfinite(c_max) and c_max > c_min):
        raise ConfigError(f"AIQ needs a cost range with c_max > c_min, got [{c_min!r}, {c_max!r}]")
    v = hull(points)
    # R̃ is linear between these knots (the range ends and the hull's vertices inside the range)
    knots = np.unique(np.concatenate([[c_min, c_max], v[:, 0][(v[:, 0] > c_min) & (v[:, 0] < c_max)]]))
    q = hull_quality(v, knots)
    reachable = knots[:-1] >= v[0, 0]          # a segment left of the hull's first vertex counts 0
    area = float(np.sum(np.where(reachable, (knots[1:] - knots[:-1]) * (q[:-1] + q[1:]) / 2, 0.0)))
    return float(area / (c_max - c_min))


def cost_at_quality(points: Sequence[Sequence[float]] | np.ndarray, target: float) -> float | None:
    """Lowest cost at which R̃ reaches ``target`` (interpolated on the hull), None if it never does."""
    v = hull(points)
    if v[-1, 1] < target - 1e-12:
        return None
    if v[0, 1] >= target:
        return float(v[0, 0])
    i = int(np.argmax(v[:, 1] >= target - 1e-12))
    (c1, q1), (c2, q2) = v[i - 1], v[i]
    return float(c1 + (target - q1) * (c2 - c1) / (q2 - q1))
