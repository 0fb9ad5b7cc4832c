"""The honest evaluation protocol: every number says what the router saw of the benchmark.

A *recipe* trains a router from labelled prompts (``fit(prompts, emb, targets, weights, sources)``
returns a scorer ``(prompts, emb) -> scores``; ``sources[i]`` names the golden source of row i). A
recipe that needs data beyond the golden outcomes (``linear_aux_static``'s aux features) builds its
``fit`` per target with ``prepare(target, embedder)``, from which the target benchmark and
near-duplicates of its prompts are removed. The protocol runs a recipe three ways per benchmark:

- **(i) cross-fitted in-domain** (k folds): each question is scored by a router trained on the
  benchmark's other folds, either alone (``in-domain only``) or with the general golden data
  (``general + in-domain``: the other golden sources; every source, the in-domain rows being one,
  weighted as the trainer weights them, ``routers.data.golden.source_weights``).
- **(ii) leave-one-benchmark-out**: trained on every other golden source, never on the target
  benchmark, and without any training prompt whose embedding is a near-duplicate (cosine >= 0.95)
  of a target prompt. This is how a router does on traffic unlike anything it was trained on.
- **(iii) learning curve**: n labelled questions drawn at random (5 draws), the router trained on
  them, with the general data weighted as in (i) (``general + n in-domain``) and alone (``n in-domain
  only``: same draws), scored on the rest of the benchmark; mean and spread of APGR for n in
  ``CURVE_SIZES`` (sizes leaving fewer than 20 questions to score skipped). Both, because with a few
  hundred labels the general rows can outweigh them: which one a deployment should train is what
  the two curves answer.

Identical and near-duplicate questions always share a fold (``crossfit.near_duplicate_groups``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from routers.data.golden import GoldenSource, source_weights
from routers.errors import ConfigError
from routers.evaluation import metrics as m
from routers.evaluation.crossfit import fold_ids, near_duplicate_groups

log = logging.getLogger(__name__)

Scorer = Callable[[Sequence[str], np.ndarray], np.ndarray]
FitFn = Callable[[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray], Scorer]

CURVE_SIZES: tuple[int, ...] = (25, 50, 100, 250, 500, 1000, 2000)
NEAR_DUPLICATE = 0.95
MIN_SCORED = 20

XFIT_ONLY = "(i) in-domain only, cross-fitted"
XFIT_GENERAL = "(i) general + in-domain, cross-fitted"
LOBO = "(ii) leave-one-benchmark-out"
CURVE_GENERAL = "general + n in-domain"
CURVE_ONLY = "n in-domain only"


@dataclass
class Recipe:
    """A named way to train a router; ``embedder`` names the embeddings ``fit`` expects."""

    name: str
    embedder: str
    fit: FitFn
    description: str = ""
    #: builds ``fit`` for one target from data other than the golden sources (never the target's)
    prepare: Callable[["Labelled", Any], FitFn] | None = None

    def for_target(self, target: "Labelled", embedder: Any = None) -> "Recipe":
        """This recipe with ``fit`` built for ``target`` (itself when it needs no preparation);
        ``embedder`` embeds the extra data (default: the recipe's own embedder)."""
        if self.prepare is None:
            return self
        if embedder is None:
            from routers.embeddings import embedder_from_spec

            embedder = embedder_from_spec(self.embedder)
        return Recipe(self.name, self.embedder, self.prepare(target, embedder), self.description)


@dataclass
class Labelled:
    """A golden source with its embeddings."""

    source: GoldenSource
    emb: np.ndarray

    def __post_init__(self) -> None:
        if len(self.emb) != len(self.source):
            raise ConfigError(f"{self.source.name}: {len(self.emb)} embeddings for {len(self.source)} prompts")


Part = tuple[str, list[str], np.ndarray, np.ndarray]  # (source name, prompts, embeddings, targets)


def pool(parts: Sequence[Part]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool sources into (prompts, embeddings, targets, weights, source names), rows weighted per
    source by ``routers.data.golden.source_weights`` (the same rule the trainer uses)."""
    parts = [p for p in parts if len(p[1])]
    if not parts:
        raise ConfigError("no training rows")
    w = source_weights({name: len(prompts) for name, prompts, _, _ in parts})
    prompts = [q for part in parts for q in part[1]]
    return (prompts, np.vstack([part[2] for part in parts]), np.concatenate([part[3] for part in parts]),
            np.concatenate([np.full(len(part[1]), w[part[0]]) for part in parts]),
            np.concatenate([np.full(len(part[1]), part[0], dtype=object) for part in parts]))


def general_parts(general: Sequence[Labelled], target_emb: np.ndarray | None = None,
                  threshold: float = NEAR_DUPLICATE) -> tuple[list[Part], int]:
    """The general golden sources minus near-duplicates of ``target_emb``, and how many rows that
    dropped."""
    parts, dropped = [], 0
    for g in general:
        keep = np.ones(len(g.source), dtype=bool)
        if target_emb is not None and len(target_emb):
            sims = np.asarray(g.emb, np.float32) @ np.asarray(target_emb, np.float32).T
            keep = sims.max(axis=1) < threshold
            dropped += int((~keep).sum())
        idx = np.flatnonzero(keep)
        parts.append((g.source.name, [g.source.prompts[i] for i in idx], g.emb[idx], g.source.targets[idx]))
    return parts, dropped


def _apgr(scores, src: GoldenSource) -> float:
    return m.apgr(scores, src.strong, src.weak)


def cross_fitted(recipe: Recipe, target: Labelled, general: Sequence[Labelled] | None, k: int = 10,
                 seed: int = 0) -> np.ndarray:
    """(i): out-of-fold scores for every target question (general data included if given)."""
    recipe = recipe.for_target(target)
    src = target.source
    groups = near_duplicate_groups(target.emb, NEAR_DUPLICATE)
    folds = fold_ids(src.prompts, min(k, len(set(groups.tolist()))), seed, groups)
    gen = general_parts(general, target.emb)[0] if general else []
    y = src.targets
    out = np.full(len(src), np.nan)
    for f in np.unique(folds):
        test, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        own = (src.name, [src.prompts[i] for i in train], target.emb[train], y[train])
        scorer = recipe.fit(*pool([*gen, own]))
        out[test] = scorer([src.prompts[i] for i in test], target.emb[test])
    return out


def leave_one_out(recipe: Recipe, target: Labelled, general: Sequence[Labelled]) -> tuple[np.ndarray, int]:
    """(ii): scores of a router trained on the other sources without near-duplicates of the target."""
    recipe = recipe.for_target(target)
    parts, dropped = general_parts(general, target.emb)
    if not parts:
        raise ConfigError(f"leave-one-benchmark-out on {target.source.name}: no other golden source")
    return recipe.fit(*pool(parts))(target.source.prompts, target.emb), dropped


def learning_curve(recipe: Recipe, target: Labelled, general: Sequence[Labelled] | None,
                   sizes: Sequence[int] = CURVE_SIZES, draws: int = 5, seed: int = 0) -> dict[int, list[float]]:
    """(iii): APGR on the unlabelled rest for n labelled questions, one value per draw."""
    recipe = recipe.for_target(target)
    src = target.source
    gen = general_parts(general, target.emb)[0] if general else []
    out: dict[int, list[float]] = {}
    for n in sizes:
        if len(src) - n < MIN_SCORED:
            continue
        vals = []
        for d in range(draws):
            perm = np.random.default_rng(seed + 1000 * d + n).permutation(len(src))
            lab, rest = np.sort(perm[:n]), np.sort(perm[n:])
            own = (src.name, [src.prompts[i] for i in lab], target.emb[lab], src.targets[lab])
            scores = recipe.fit(*pool([*gen, own]))([src.prompts[i] for i in rest], target.emb[rest])
            vals.append(float(m.apgr(scores, src.strong[rest], src.weak[rest])))
        out[n] = vals
    return out


def _linear_fit(prompts, emb, y, w, sources=None) -> Scorer:
    from routers.models.linear import fit_linear

    return fit_linear(prompts, emb, y, w).score_with_embeddings


#: the penalties the reference ridge chooses among (efficient leave-one-out on its training rows)
RIDGE_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def _ridge_reference_fit(prompts, emb, y, w, sources=None) -> Scorer:
    """The routing-quality issue's outside reference: one plain ridge regression on [embedding,
    log prompt length], its penalty chosen by leave-one-out on the training rows. An evaluation
    baseline (is our pipeline at least as good?), not a served router."""
    from sklearn.linear_model import RidgeCV

    def features(ps, e):
        return np.c_[np.asarray(e, np.float64), np.log1p([len(p) for p in ps])]

    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(features(prompts, emb), y, sample_weight=w)
    return lambda ps, e: model.predict(features(ps, e))


def _linear_aux_prepare(target: Labelled, embedder: Any) -> FitFn:
    """The aux regressors for ``target``: trained without its benchmark's rows or near-duplicates
    of its prompts (``routers.data.aux_targets``); then ``fit`` chooses β on the training rows."""
    from routers.models.linear_aux import fit_aux, fit_linear_aux

    # a set drawn wholly from the target benchmark (GSM8K steps for GSM8K) is left out, not faked
    aux = [fit_aux(data, emb, avoid_emb=target.emb) for data, emb in _aux_sets(target.source.name, embedder)
           if len(data)]

    def fit(prompts, emb, y, w, sources=None) -> Scorer:
        return fit_linear_aux(prompts, emb, y, w, sources, aux).score_with_embeddings

    return fit


_AUX_CACHE: dict = {}


def _aux_sets(benchmark: str, embedder: Any) -> list[tuple[Any, np.ndarray]]:
    """Each aux set without ``benchmark``'s families, with its embeddings (cached per embedder)."""
    from routers.data.aux_targets import AUX_KINDS, BENCHMARK_FAMILIES, load_aux

    key = getattr(embedder, "name", str(embedder))
    if key not in _AUX_CACHE:
        sets = [load_aux(kind) for kind in AUX_KINDS]
        _AUX_CACHE[key] = [(d, np.asarray(embedder.embed(d.prompts), np.float32)) for d in sets]
    out = []
    for data, emb in _AUX_CACHE[key]:
        keep = ~np.isin(data.families, BENCHMARK_FAMILIES.get(benchmark, ()))
        out.append((data.subset(keep), emb[keep]))
    return out


def _no_preparation(prompts, emb, y, w, sources=None) -> Scorer:
    raise ConfigError("this recipe builds its fit per target: call recipe.for_target(target) first")


#: the recipe that builds the served default (serve_config.yaml's ``default_router``,
#: checkpoints/linear_aux_static; tests/unit/test_linear_aux.py checks they agree). Reports mark it.
SERVED_DEFAULT_RECIPE = "linear_aux_static"

#: recipe name -> (embedder spec, fit, description[, prepare]).
RECIPES: dict[str, tuple] = {
    "linear_static": ("static", _linear_fit, "linear router (hashed word n-grams + static MiniLM + surface counts)"),
    "linear": (None, _linear_fit, "linear router (hashed word n-grams + MiniLM + surface counts)"),
    "linear_aux_static": ("static", _no_preparation,
                          "linear_static + many-model difficulty and GSM8K-steps features, β by leave-one-source-out",
                          _linear_aux_prepare),
    "linear_aux": (None, _no_preparation,
                   "linear + many-model difficulty and GSM8K-steps features, β by leave-one-source-out (MiniLM)",
                   _linear_aux_prepare),
    "ridge": (None, _ridge_reference_fit,
              "reference: plain ridge on [MiniLM, log length], α by leave-one-out (the issue's outside measurement)"),
}


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    spec, fit, desc, *prepare = RECIPES[name]
    return Recipe(name, spec or "all-MiniLM-L6-v2", fit, desc, prepare[0] if prepare else None)


def run_protocol(recipe: Recipe, target: Labelled, general: Sequence[Labelled], folds: int = 10, seed: int = 0,
                 curve: bool = True, draws: int = 5, embedder: Any = None,
                 sizes: Sequence[int] = CURVE_SIZES) -> dict:
    """All three parts for one recipe on one benchmark: scores and APGR of (i) and (ii), the curve."""
    recipe = recipe.for_target(target, embedder)  # once: (i), (ii) and (iii) share the aux features
    src = target.source
    res: dict = {"recipe": recipe.name, "embedder": recipe.embedder, "description": recipe.description,
                 "general_sources": [g.source.name for g in general], "rows": []}
    t0 = time.perf_counter()

    def progress(part: str) -> None:  # a long job: say where it is
        log.info("protocol %s on %s: %s (%.0f s)", recipe.name, src.name, part, time.perf_counter() - t0)

    progress(XFIT_ONLY)
    only = cross_fitted(recipe, target, None, folds, seed)
    res["rows"].append({"protocol": XFIT_ONLY, "scores": only})
    progress(XFIT_GENERAL)
    both = cross_fitted(recipe, target, general, folds, seed)
    res["rows"].append({"protocol": XFIT_GENERAL, "scores": both})
    progress(LOBO)
    lobo, dropped = leave_one_out(recipe, target, general)
    res["rows"].append({"protocol": LOBO, "scores": lobo, "near_duplicates_dropped": dropped})
    for row in res["rows"]:
        row["apgr"] = _apgr(row["scores"], src)
    if curve:
        progress(f"(iii) learning curve, {draws} draws per size")
        res["curve"] = {CURVE_GENERAL: learning_curve(recipe, target, general, sizes, draws, seed)}
        progress(f"(iii) learning curve without the general data, {draws} draws per size")
        res["curve"][CURVE_ONLY] = learning_curve(recipe, target, None, sizes, draws, seed)
    progress("done")
    return res


def paired_bootstrap(a: np.ndarray, b: np.ndarray, strong: np.ndarray, weak: np.ndarray, n_boot: int = 1000,
                     seed: int = 0, quantiles: tuple[float, float] = (0.025, 0.975)) -> dict:
    """APGR(a) − APGR(b) on the same questions, with an interval from resampling questions (default
    the two-sided 95 % one; ``(0.05, 0.95)``: its lower end is a one-sided 95 % bound)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    strong, weak = np.asarray(strong, float), np.asarray(weak, float)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        try:
            diffs[i] = m.apgr(a[idx], strong[idx], weak[idx]) - m.apgr(b[idx], strong[idx], weak[idx])
        except ValueError:  # a resample where both models score the same: PGR undefined, skip it
            diffs[i] = np.nan
    return {"diff": float(m.apgr(a, strong, weak) - m.apgr(b, strong, weak)),
            "lo": float(np.nanquantile(diffs, quantiles[0])), "hi": float(np.nanquantile(diffs, quantiles[1])),
            "n_boot": n_boot}
