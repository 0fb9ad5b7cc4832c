"""Cross-fitted evaluation of N-way quality routers on cost–quality curves (RouterBench's AIQ).

Per family (a set of questions with every model's outcome and cost):

1. Embed once; near-identical questions (cosine >= 0.95 of their character-trigram counts, which
   works for any script: the static embedder maps most Chinese questions to nearly the same vector)
   share a fold.
2. For each seed and each of k folds: fit every router on the other folds *of this family only*
   (its hyper-parameters chosen inside those training folds: kNN's k and the head's ridge penalty
   by inner 3-fold CV, MF by early stopping on 10 % of the training prompts), predict the held-out
   fold, and route it with ``routers.nway.selection.choose`` for every λ of ``LAMBDAS``. The price
   the rule sees is each model's mean cost on the training folds (a router cannot know an answer's
   cost before asking); the cost charged is the query's recorded cost (RouterBench, USD) or the
   model's parameter count (open7, which records none).
3. Per (seed, fold): AIQ of each router (every hull anchored at the cheapest single model's point,
   best of the cheapest if several cost the same: any router may send a random share of queries
   there without information, so no router is scored 0 below its own cheapest point), of the
   Zero router (hull of the single models), of the oracle (cheapest correct model per query), and
   of two-model routers for every pair (a ridge on the same features predicting P(pricier correct
   > cheaper correct), threshold swept over the held-out scores' quantiles). Two pairs are reported: the best pair, the one with the best mean
   AIQ over all (seed, fold), chosen *on the evaluation* (an optimistic baseline), and the
   training pair, per fold the pair whose random mix has the best AIQ on the training folds (no
   held-out label used).
4. Pooled per seed: every λ's point over the whole family (out-of-fold choices assembled), and the
   cost share at the best single model's quality.

``evaluate_families`` does all of it and returns a JSON-able dict; ``routers.evaluation.nway_report``
writes it out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from routers.data.nway import Family
from routers.errors import ConfigError
from routers.evaluation.crossfit import fold_ids
from routers.evaluation.nway_metrics import aiq, cost_at_quality, hull, hull_quality
from routers.nway.selection import choose

log = logging.getLogger(__name__)

#: the λ grid: 0 (best predicted quality whatever the price), then 120 values log-spaced from 1e-4 to
#: 100 (the cheapest model). A router's curve is only as good as its sampled points: between two
#: points the hull is a straight line, no better than mixing them at random. The first committed
#: run used 19 hand-picked values, too sparse where the decisions change fastest; the two-model
#: routers beside it get 21 strong shares, so this grid gives the N-way routers a comparable sweep.
LAMBDAS: tuple[float, ...] = (0.0, *(float(x) for x in np.logspace(-4, 2, 120)))
#: strong shares of the two-model threshold sweep
SHARES: tuple[float, ...] = tuple(np.round(np.linspace(0, 1, 21), 3))
QUALITY_ROUTERS: tuple[str, ...] = ("knn", "head", "mf")


def text_duplicate_groups(prompts: Sequence[str], threshold: float = 0.95, block: int = 512) -> np.ndarray:
    """Group id per prompt: prompts joined (transitively) when the cosine of their character-trigram
    count vectors is >= ``threshold``, so near-identical questions never straddle a split."""
    from sklearn.feature_extraction.text import HashingVectorizer

    x = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), n_features=2 ** 18, norm="l2",
                          alternate_sign=False).transform(list(prompts)).tocsr()
    parent = np.arange(len(prompts))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    xt = x.T.tocsc()
    for start in range(0, len(prompts), block):
        sims = (x[start:start + block] @ xt).tocoo()
        for r, c, v in zip(sims.row + start, sims.col, sims.data):
            if c > r and v >= threshold:
                a, b = find(r), find(c)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(len(prompts))])


# --- fitting the routers on one training split ----------------------------------------------------


def fit_predict(router: str, prompts: Sequence[str], emb: np.ndarray, y: np.ndarray, test_prompts: Sequence[str],
                test_emb: np.ndarray, models: Sequence[str], seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit ``router`` on (prompts, emb, y) as ``rayroute train-nway`` does
    (``routers.nway.registry.fit_quality_router``) and predict the test rows. Returns the (n_test, m)
    predicted quality and the hyper-parameter chosen inside the training rows."""
    from routers.nway.registry import fit_quality_router

    if router not in QUALITY_ROUTERS:
        raise ConfigError(f"unknown N-way router {router!r} for the evaluation; known: {', '.join(QUALITY_ROUTERS)}")
    r = fit_quality_router(router, prompts, emb, y, models, embedder_name="eval", seed=seed)
    chosen = {"knn": lambda: {"k": r.k}, "head": lambda: {"alpha": r.alpha},
              "mf": lambda: {"best_epoch": r.info["training"]["best_epoch"]}}[router]()
    return r.predict_embeddings(test_prompts, test_emb), chosen


def pair_scores(prompts: Sequence[str], emb: np.ndarray, y: np.ndarray, test_prompts: Sequence[str],
                test_emb: np.ndarray, pairs: Sequence[tuple[int, int]], seed: int) -> np.ndarray:
    """Two-model routers for every (cheap, dear) pair at once: P(dear correct > cheap correct) as a
    calibrated ridge on the head's features of the target 0.5 + (y_dear − y_cheap) / 2 (the served
    linear router's target). Returns (n_test, n_pairs) scores; higher sends to the dear model."""
    from routers.nway.head import HeadQualityRouter

    t = np.stack([0.5 + (y[:, d] - y[:, c]) / 2 for c, d in pairs], axis=1)
    names = [f"{c}>{d}" for c, d in pairs]
    r = HeadQualityRouter.fit_embeddings(prompts, emb, t, names, alpha="cv", embedder_name="eval", seed=seed)
    return r.predict_embeddings(test_prompts, test_emb)


# --- points on one fold ---------------------------------------------------------------------------


def lambda_points(q_pred: np.ndarray, est_cost: np.ndarray, costs: np.ndarray, outcomes: np.ndarray,
                  lambdas: Sequence[float] = LAMBDAS) -> np.ndarray:
    """Per λ, the summed (cost, quality) of the models that ``routers.nway.selection.choose`` picks,
    shape (len(lambdas), 2)."""
    rows = np.arange(len(q_pred))
    sums = np.zeros((len(lambdas), 2))
    for i, lam in enumerate(lambdas):
        pick = choose(q_pred, est_cost, lam)
        sums[i] = costs[rows, pick].sum(), outcomes[rows, pick].sum()
    return sums


def threshold_points(score: np.ndarray, cheap: int, dear: int, costs: np.ndarray, outcomes: np.ndarray,
                     shares: Sequence[float] = SHARES) -> np.ndarray:
    """Summed (cost, quality) of sending the top ``share`` of queries by score to ``dear``."""
    order = np.argsort(-score, kind="stable")
    out = np.zeros((len(shares), 2))
    for i, s in enumerate(shares):
        to_dear = np.zeros(len(score), bool)
        to_dear[order[:int(round(s * len(score)))]] = True
        pick = np.where(to_dear, dear, cheap)
        rows = np.arange(len(score))
        out[i] = costs[rows, pick].sum(), outcomes[rows, pick].sum()
    return out


def oracle_point(costs: np.ndarray, outcomes: np.ndarray) -> tuple[float, float]:
    """Mean (cost, quality) of the best outcome per query at its cheapest model."""
    best = outcomes.max(axis=1, keepdims=True)
    cost = np.where(outcomes >= best - 1e-12, costs, np.inf).min(axis=1)
    return float(cost.mean()), float(best.mean())


# --- one family -----------------------------------------------------------------------------------


def evaluate_family(fam: Family, routers: Sequence[str] = QUALITY_ROUTERS, folds: int = 5,
                    seeds: Sequence[int] = (0, 1, 2), lambdas: Sequence[float] = LAMBDAS,
                    log_fn: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Cross-fitted curves and AIQs of ``routers`` and the baselines on one family (module docstring)."""
    if fam.emb is None:
        raise ConfigError(f"family {fam.name!r} has no embeddings; embed its prompts first")
    n, m = fam.outcomes.shape
    emb = np.asarray(fam.emb, dtype=np.float32)
    groups = text_duplicate_groups(fam.prompts)
    pairs_all = list(combinations(range(m), 2))
    routers = list(routers)
    per_fold: list[dict[str, Any]] = []
    pooled = {r: np.zeros((len(seeds), len(lambdas), 2)) for r in routers}
    pair_pooled = np.zeros((len(seeds), len(pairs_all), len(SHARES), 2))
    chosen: dict[str, list] = {r: [] for r in routers}
    for si, seed in enumerate(seeds):
        fold = fold_ids(fam.prompts, folds, seed=seed, groups=groups)
        for f in range(folds):
            t0 = time.perf_counter()
            tr, te = np.nonzero(fold != f)[0], np.nonzero(fold == f)[0]
            p_tr, p_te = [fam.prompts[i] for i in tr], [fam.prompts[i] for i in te]
            y_tr, c_te, y_te = fam.outcomes[tr], fam.costs[te], fam.outcomes[te]
            est_cost = fam.costs[tr].mean(axis=0)
            singles = np.c_[c_te.mean(0), y_te.mean(0)]
            c_lo, c_hi = float(singles[:, 0].min()), float(singles[:, 0].max())
            anchor = hull(singles)[:1]

            def score(points, lo=c_lo, hi=c_hi, anchor=anchor):
                return aiq(np.vstack([anchor, points]), lo, hi)

            rec: dict[str, Any] = {"seed": seed, "fold": f, "n_test": len(te), "cost_range": [c_lo, c_hi],
                                   "aiq": {"zero": score(singles), "oracle": score([oracle_point(c_te, y_te)])}}
            for r in routers:
                q_pred, info = fit_predict(r, p_tr, emb[tr], y_tr, p_te, emb[te], fam.models, seed)
                sums = lambda_points(q_pred, est_cost, c_te, y_te, lambdas)
                pooled[r][si] += sums
                rec["aiq"][r] = score(sums / len(te))
                chosen[r].append(info)
            # two-model routers: the pricier model (by training-fold mean cost, then quality) is "dear"
            mean_q = y_tr.mean(0)
            pairs = [(a, b) if (est_cost[a], mean_q[a]) <= (est_cost[b], mean_q[b]) else (b, a) for a, b in pairs_all]
            scores = pair_scores(p_tr, emb[tr], y_tr, p_te, emb[te], pairs, seed)
            rec["pair_aiq"] = []
            for j, (c, d) in enumerate(pairs):
                sums = threshold_points(scores[:, j], c, d, c_te, y_te)
                pair_pooled[si, j] += sums
                rec["pair_aiq"].append(score(sums / len(te)))
            # a fair pair: the one whose random mix has the best AIQ on the training folds (no test labels)
            tr_singles = np.c_[est_cost, mean_q]
            tr_lo, tr_hi = float(est_cost.min()), float(est_cost.max())
            tr_anchor = hull(tr_singles)[:1]
            fair = max(range(len(pairs)),
                       key=lambda j: aiq(np.vstack([tr_anchor, tr_singles[list(pairs[j])]]), tr_lo, tr_hi))
            rec["train_pair"] = [fam.models[pairs[fair][0]], fam.models[pairs[fair][1]]]
            rec["aiq"]["train_pair"] = rec["pair_aiq"][fair]
            per_fold.append(rec)
            log_fn(f"{fam.name}: seed {seed} fold {f + 1}/{folds} (n_test {len(te)}) "
                   + " ".join(f"{k} {v:.4f}" for k, v in rec["aiq"].items()) + f" [{time.perf_counter() - t0:.1f}s]")
    return summarize_family(fam, routers, per_fold, pooled, pair_pooled, pairs_all, chosen, seeds, lambdas)


def _spread(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "p2.5": float(np.percentile(v, 2.5)), "p97.5": float(np.percentile(v, 97.5)), "n": int(v.size)}


def summarize_family(fam: Family, routers: Sequence[str], per_fold: list[dict], pooled: dict[str, np.ndarray],
                     pair_pooled: np.ndarray, pairs_all: list[tuple[int, int]], chosen: dict[str, list],
                     seeds: Sequence[int], lambdas: Sequence[float]) -> dict[str, Any]:
    """AIQ spreads and margins over (seed, fold), pooled curves and cost shares per seed."""
    n = len(fam.prompts)
    pair_aiq = np.array([r["pair_aiq"] for r in per_fold])              # (folds×seeds, pairs)
    best = int(np.argmax(pair_aiq.mean(0)))
    a, b = pairs_all[best]
    mean_cost = fam.costs.mean(0)
    best_pair = [fam.models[a], fam.models[b]] if mean_cost[a] <= mean_cost[b] else [fam.models[b], fam.models[a]]
    for r in per_fold:
        r["aiq"]["best_pair"] = r["pair_aiq"][best]
    names = ["zero", "oracle", *routers, "best_pair", "train_pair"]
    singles = np.c_[fam.costs.mean(0), fam.outcomes.mean(0)]
    top = int(np.lexsort((singles[:, 0], -singles[:, 1]))[0])
    c_lo, c_hi = float(singles[:, 0].min()), float(singles[:, 0].max())
    anchor = hull(singles)[:1]

    def score(points):
        return aiq(np.vstack([anchor, points]), c_lo, c_hi)

    def at_60(points):
        """Hull quality at 60 % of the best single model's cost (the issue's budget)."""
        return float(hull_quality(hull(np.vstack([anchor, points])), 0.6 * singles[top, 0]))

    curves: dict[str, list] = {}
    q60: dict[str, list] = {}
    share: dict[str, list] = {}
    pooled_aiq: dict[str, list] = {}
    for r in routers:
        pts = pooled[r] / n                                                  # (seeds, λ, 2)
        curves[r] = pts.tolist()
        share[r] = [None if (c := cost_at_quality(p, singles[top, 1])) is None else c / singles[top, 0] for p in pts]
        pooled_aiq[r] = [score(p) for p in pts]
        q60[r] = [at_60(p) for p in pts]
    bp = pair_pooled[:, best] / n
    curves["best_pair"] = bp.tolist()
    share["best_pair"] = [None if (c := cost_at_quality(p, singles[top, 1])) is None else c / singles[top, 0]
                          for p in bp]
    pooled_aiq["best_pair"] = [score(p) for p in bp]
    q60["best_pair"] = [at_60(p) for p in bp]
    q60["zero"] = [at_60(singles)]
    share["zero"] = [1.0]
    pooled_aiq["zero"] = [score(singles)]
    oracle = oracle_point(fam.costs, fam.outcomes)
    pooled_aiq["oracle"] = [score([oracle])]
    aiqs = {k: _spread([r["aiq"][k] for r in per_fold]) for k in names}
    margins = {r: {base: _spread([f["aiq"][r] - f["aiq"][base] for f in per_fold])
                   for base in ("zero", "knn", "best_pair", "train_pair")
                   if base != r and base in names} for r in routers}
    return {
        "family": fam.name, "n": n, "models": fam.models, "cost_unit": fam.cost_unit, "note": fam.note,
        "seeds": list(seeds), "folds": max(f["fold"] for f in per_fold) + 1, "lambdas": list(lambdas),
        "singles": {m: {"cost": float(c), "quality": float(q)} for m, (c, q) in zip(fam.models, singles)},
        "best_single": {"model": fam.models[top], "cost": float(singles[top, 0]), "quality": float(singles[top, 1])},
        "cost_range": [c_lo, c_hi], "oracle": {"cost": oracle[0], "quality": oracle[1]},
        "zero_hull": hull(singles).tolist(),
        "best_pair": {"models": best_pair, "order": "[cheaper, pricier] by mean cost",
                      "shares": [float(x) for x in SHARES]},
        "train_pairs": {str(p): int(n) for p, n in zip(*np.unique([" → ".join(f["train_pair"]) for f in per_fold],
                                                                    return_counts=True))},
        "aiq": aiqs, "margins": margins, "pooled_aiq": pooled_aiq, "cost_share_at_best_quality": share,
        "quality_at_60pct_of_best_cost": q60,
        "curves": curves, "hyperparameters": chosen, "per_fold": per_fold,
    }


def evaluate_families(families: Sequence[Family], embedder: Any, routers: Sequence[str] = QUALITY_ROUTERS,
                      folds: int = 5, seeds: Sequence[int] = (0, 1, 2), lambdas: Sequence[float] = LAMBDAS,
                      command: str | None = None, log_fn: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Embed each family with ``embedder`` and evaluate it; the JSON-able result of every family."""
    unknown = [r for r in routers if r not in QUALITY_ROUTERS]
    if unknown or not routers:
        raise ConfigError(f"unknown N-way router(s) {unknown or list(routers)}; known: {', '.join(QUALITY_ROUTERS)}")
    if folds < 2 or not seeds:
        raise ConfigError(f"need folds >= 2 and at least one seed, got folds={folds}, seeds={list(seeds)}")
    t0 = time.perf_counter()
    out = []
    for fam in families:
        log_fn(f"{fam.name}: embedding {len(fam.prompts)} prompts with {embedder.name}")
        fam.emb = np.asarray(embedder.embed(fam.prompts), dtype=np.float32)
        out.append(evaluate_family(fam, routers, folds, seeds, lambdas, log_fn))
    return {"command": command, "embedder": embedder.name, "routers": list(routers), "folds": folds,
            "seeds": list(seeds), "lambdas": list(lambdas), "seconds": time.perf_counter() - t0,
            "training": "each family's routers are trained on the other folds of that family only",
            "families": out}
