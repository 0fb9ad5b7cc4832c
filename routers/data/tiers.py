"""Model tiers (paper, section 4.1): Bradley-Terry ratings, then optimal 1-D clustering.

1. ``fit_bradley_terry``: the Chatbot Arena method. Maximum likelihood of
   P(b beats a) = 1 / (1 + 10 ** ((R_a - R_b) / 400)) over every row of a canonical preference
   frame; a tie counts as half a win for each side, a soft label ``p_b_wins`` as that fraction of a
   win for b, and each row counts ``weight`` times. Ratings are on the Elo scale (400 / ln 10 per
   unit of log-odds), shifted to mean 1000.
2. ``cluster_tiers``: exact dynamic programming that splits the sorted ratings into N contiguous
   groups minimising the total within-tier sum of squared deviations (1-D k-means is exact on
   contiguous groups). Tier 0 is the best.

Default sources (``TIER_SOURCES``): AlpacaEval + RouterBench. They share gpt-4-1106-preview,
Mixtral-8x7B, gpt-3.5-turbo-1106, claude-2, Yi-34B-Chat and llama-2-70b-chat, so one rating scale
covers both. open7 is excluded: its 7 small models meet the rest only through zephyr-7b-beta and
its 265k correctness rows on exam questions would dominate the GPT-4-judge signal; pass it
explicitly if wanted. When the battle graph is disconnected, ratings of different components are
not comparable (each is only pinned by the prior), so ``compute_tiers`` logs a warning naming them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from routers.data.aliases import canonical
from routers.errors import ConfigError, DataError, UnknownModelError

log = logging.getLogger(__name__)

ELO_SCALE = 400.0 / np.log(10.0)
ELO_MEAN = 1000.0
TIER_SOURCES = ("alpaca_eval", "routerbench")
#: Gaussian prior (L2 penalty, in log-odds units) on each model's strength. Tiny next to the
#: hundreds of battles per model, but it keeps an undefeated (or never-winning) model, and a
#: component with no battles against the rest, at a finite rating.
L2_PRIOR = 1e-2


def _model_index(df: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    if df.empty:
        raise DataError("no preference rows to fit ratings on; check the sources")
    # factorize on object arrays: iterating pandas string columns in Python is ~10x slower
    both = np.concatenate([df["model_a"].to_numpy(dtype=object), df["model_b"].to_numpy(dtype=object)])
    codes, uniques = pd.factorize(both)
    order = np.argsort(uniques.astype(str), kind="stable")  # sorted names: a deterministic index
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[codes]
    n = len(df)
    return [str(uniques[i]) for i in order], codes[:n], codes[n:]


def fit_bradley_terry(df: pd.DataFrame, l2: float = L2_PRIOR) -> pd.Series:
    """Bradley-Terry ratings with ties by MLE over all models in ``df`` (model -> rating, desc)."""
    models, a, b = _model_index(df)
    w = df["weight"].to_numpy(dtype=float)
    p = df["p_b_wins"].to_numpy(dtype=float)
    n = len(models)
    # Sufficient statistics: per ordered pair, the (weighted) wins of b and of a. Hundreds of
    # pairs instead of ~10^5 rows makes every likelihood evaluation cheap.
    wins_b = coo_matrix((w * p, (a, b)), shape=(n, n)).toarray()
    wins_a = coo_matrix((w * (1 - p), (a, b)), shape=(n, n)).toarray()
    ia, ib = np.nonzero(wins_a + wins_b)
    wb, wa = wins_b[ia, ib], wins_a[ia, ib]

    def nll(theta):
        d = theta[ib] - theta[ia]  # log-odds that b wins
        # -[wb log s(d) + wa log s(-d)], with log s(x) = -logaddexp(0, -x) (numerically stable)
        return wb @ np.logaddexp(0, -d) + wa @ np.logaddexp(0, d) + 0.5 * l2 * theta @ theta

    # Newton's method with backtracking: the objective is strictly convex (thanks to the prior)
    # and has one parameter per model, so the exact Hessian is small and ~10 steps converge.
    # (scipy's L-BFGS-B needed ~300 evaluations and seconds for the same fit.)
    theta = np.zeros(n)
    f = nll(theta)
    for _ in range(200):
        d = theta[ib] - theta[ia]
        s = 1.0 / (1.0 + np.exp(-d))
        g_d = -wb * (1 - s) + wa * s  # d loss / d d, per pair
        grad = np.bincount(ib, g_d, n) - np.bincount(ia, g_d, n) + l2 * theta
        h_d = (wa + wb) * s * (1 - s)  # d2 loss / d d2: a weighted graph Laplacian below
        hess = l2 * np.eye(n)
        np.add.at(hess, (ia, ia), h_d)
        np.add.at(hess, (ib, ib), h_d)
        np.add.at(hess, (ia, ib), -h_d)
        np.add.at(hess, (ib, ia), -h_d)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:
            f_new = nll(theta - t * step)
            if f_new <= f - 1e-4 * t * grad @ step or t < 1e-10:
                break
            t *= 0.5
        theta, f_prev, f = theta - t * step, f, f_new
        if grad @ step < 1e-12 * max(1.0, abs(f)) or f_prev - f < 1e-14 * max(1.0, abs(f)):
            break
    if not np.all(np.isfinite(theta)):
        raise DataError("Bradley-Terry fit diverged; check the preference weights (finite, >= 0)")
    ratings = ELO_MEAN + ELO_SCALE * (theta - theta.mean())
    return pd.Series(ratings, index=models, name="rating").sort_values(ascending=False)


def battle_components(df: pd.DataFrame) -> list[list[str]]:
    """Connected components of the graph 'model a met model b', largest first."""
    models, a, b = _model_index(df)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(models),) * 2)
    n, labels = connected_components(graph, directed=False)
    comps = [[m for m, lab in zip(models, labels) if lab == k] for k in range(n)]
    return sorted(comps, key=len, reverse=True)


def cluster_tiers(values, n_tiers: int) -> list[int]:
    """Exact optimal split of ``values`` into ``n_tiers`` groups (min total within-group sum of
    squared deviations). Returns the tier of each value in input order; 0 = highest values."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if not isinstance(n_tiers, (int, np.integer)) or not 1 <= n_tiers <= n:
        raise ConfigError(f"n_tiers={n_tiers!r} must be an integer in [1, {n}] (the number of models)")
    if not np.all(np.isfinite(v)):
        raise DataError("cluster_tiers: values must be finite numbers")
    order = np.argsort(-v, kind="stable")
    s = v[order]
    c1 = np.concatenate([[0.0], np.cumsum(s)])
    c2 = np.concatenate([[0.0], np.cumsum(s * s)])

    def sse(i, j):  # cost of group s[i:j] for a vector of starts i and a fixed end j
        cnt = j - i
        return (c2[j] - c2[i]) - (c1[j] - c1[i]) ** 2 / cnt

    inf = np.inf
    dp = np.full((n_tiers + 1, n + 1), inf)
    back = np.zeros((n_tiers + 1, n + 1), dtype=int)
    dp[0, 0] = 0.0
    for k in range(1, n_tiers + 1):
        for j in range(k, n + 1):
            starts = np.arange(k - 1, j)  # the k-th group is s[i:j], the first k-1 cover s[:i]
            cost = dp[k - 1, starts] + sse(starts, j)
            best = int(np.argmin(cost))
            dp[k, j], back[k, j] = cost[best], starts[best]
    tiers_sorted = np.empty(n, dtype=int)
    j = n
    for k in range(n_tiers, 0, -1):
        i = back[k, j]
        tiers_sorted[i:j] = k - 1
        j = i
    out = np.empty(n, dtype=int)
    out[order] = tiers_sorted
    return out.tolist()


@dataclass
class TierTable:
    """Ratings (desc), tier per model (0 = best) and number of battles per model."""

    ratings: pd.Series
    tiers: dict[str, int]
    battles: dict[str, int] = field(default_factory=dict)

    @property
    def n_tiers(self) -> int:
        return max(self.tiers.values()) + 1 if self.tiers else 0

    def models(self) -> list[str]:
        """Every model, best rating first."""
        return list(self.ratings.index)

    def _known(self, model: str) -> str:
        name = canonical(model)
        if name not in self.tiers:
            raise UnknownModelError(f"model {model!r} is not in the tier table; known models: "
                                    f"{sorted(self.tiers)}")
        return name

    def tier_of(self, model: str) -> int:
        return self.tiers[self._known(model)]

    def models_in(self, tier: int) -> list[str]:
        """Models of one tier, best rating first."""
        if not isinstance(tier, (int, np.integer)) or not 0 <= tier < self.n_tiers:
            raise ConfigError(f"tier {tier!r} does not exist; tiers are 0..{self.n_tiers - 1}")
        return [m for m in self.ratings.index if self.tiers[m] == tier]

    def strong_models(self, strong_tiers=(0, 1)) -> list[str]:
        return [m for t in strong_tiers for m in self.models_in(t)]

    def weak_models(self, weak_tiers=(2,)) -> list[str]:
        return [m for t in weak_tiers for m in self.models_in(t)]

    def to_dict(self) -> dict:
        return {
            "ratings": {m: float(r) for m, r in self.ratings.items()},
            "tiers": {m: int(t) for m, t in self.tiers.items()},
            "battles": {m: int(c) for m, c in self.battles.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "TierTable":
        if not isinstance(d, dict) or not {"ratings", "tiers"} <= set(d):
            raise DataError("tier table: expected an object with 'ratings' and 'tiers' (and 'battles')")
        if set(d["ratings"]) != set(d["tiers"]):
            diff = sorted(set(d["ratings"]) ^ set(d["tiers"]))
            raise DataError(f"tier table: 'ratings' and 'tiers' name different models: {diff}")
        ratings = pd.Series({m: float(r) for m, r in d["ratings"].items()}, name="rating")
        return cls(ratings.sort_values(ascending=False), {m: int(t) for m, t in d["tiers"].items()},
                   {m: int(c) for m, c in d.get("battles", {}).items()})

    def save_json(self, path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return p

    @classmethod
    def load_json(cls, path) -> "TierTable":
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{p}: tier table file not found; write one with `rayroute tiers --json {p}`")
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}: not valid JSON ({exc})") from exc

    def format_table(self) -> str:
        lines = [f"{'tier':>4}  {'rating':>8}  {'battles':>8}  model"]
        for m, r in self.ratings.items():
            lines.append(f"{self.tiers[m]:>4}  {r:>8.1f}  {self.battles.get(m, 0):>8,}  {m}")
        return "\n".join(lines)


def compute_tiers(df: pd.DataFrame, n_tiers: int = 10, l2: float = L2_PRIOR) -> TierTable:
    """Fit ratings on ``df`` and cluster them into ``n_tiers`` tiers."""
    comps = battle_components(df)
    if len(comps) > 1:
        log.warning("battle graph has %d components; ratings across them are not comparable: %s",
                    len(comps), [c[:3] + (["..."] if len(c) > 3 else []) for c in comps])
    ratings = fit_bradley_terry(df, l2=l2)
    tiers = dict(zip(ratings.index, cluster_tiers(ratings.to_numpy(), n_tiers)))
    counts = pd.concat([df["model_a"], df["model_b"]]).value_counts()
    return TierTable(ratings, tiers, {m: int(counts.get(m, 0)) for m in ratings.index})


def tiers(sources=TIER_SOURCES, n_tiers: int = 10, paths: dict | None = None) -> TierTable:
    """The ``rayroute tiers`` command as a function: load ``sources`` and compute the tier table."""
    from routers.data.preferences import load_source

    paths = paths or {}
    df = pd.concat([load_source(s, paths.get(s)) for s in sources], ignore_index=True)
    return compute_tiers(df, n_tiers=n_tiers)
