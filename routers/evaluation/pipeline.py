"""The evaluation pipeline: routers x benchmarks -> metrics, baselines, decontamination,
similarity, cost, in one JSON-able result (``routers.evaluation.report`` renders it).

Rows of the results table:

- ``length``: prompt length only (longer -> strong); always reported, beside ``random`` and the
  oracle, which are always reported too.
- ``--routers``: registry names (``mf``, ``sw_ranking``, ``bert``, ...) or checkpoint directories,
  scored as trained (a checkpoint trained on a benchmark is not scored on it).
- ``--recipes``: training recipes run through the honest protocol (``routers.evaluation.protocol``):
  cross-fitted in-domain, leave-one-benchmark-out, learning curve.

Every number in the output says which configuration it comes from (``config`` of each row).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from routers.data.benchmarks import BENCHMARKS, Benchmark, load_benchmark
from routers.errors import ConfigError, RoutersError
from routers.evaluation import metrics as m
from routers.evaluation.baselines import length_scores, random_baseline
from routers.evaluation.score_store import ScoreStore, checkpoint_fingerprint
from routers.evaluation.similarity import (
    CONTAMINATION_THRESHOLD,
    benchmark_similarity,
    decontaminate,
)

log = logging.getLogger(__name__)

GENERAL = "general data"
#: the committed general-data checkpoints (the served default is trained on the benchmarks: its
#: figures come from its recipe, ``--recipes linear_aux_static``)
DEFAULT_ROUTERS = ("mf", "sw_ranking", "mf_static", "sw_static")

#: The paper's prices (appendix D), $ per million tokens.
GPT4_PRICE = 24.7
MIXTRAL_PRICE = 0.24


@dataclass
class EvalConfig:
    routers: Sequence[str] = DEFAULT_ROUTERS
    benchmarks: Sequence[str] = BENCHMARKS
    data_dir: str | Path | None = None
    #: training mix (None = the default mix) for decontamination / similarity
    mix: Any = None
    #: explicit strong / weak model lists for the general-data targets (default: tiers 0-1 vs 2)
    strong_models: Sequence[str] | None = None
    weak_models: Sequence[str] | None = None
    embedder: Any = None  # an Embedder or a spec for routers.embeddings.embedder_from_spec
    folds: int = 10
    seed: int = 0
    n_random: int = 1000
    decontaminate: bool = True
    threshold: float = CONTAMINATION_THRESHOLD
    cache_dir: str | Path | None = None
    use_cache: bool = True
    strong_price: float = GPT4_PRICE
    weak_price: float = MIXTRAL_PRICE
    progress: bool = True
    #: training recipes run through the honest protocol ((i), (ii), (iii); routers.evaluation.protocol)
    recipes: Sequence[str] = ()
    curve: bool = True
    curve_draws: int = 5
    extra: dict = field(default_factory=dict)


def _tqdm(it, progress: bool, **kw):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, **kw)


def _embedder(spec):
    if spec is not None and not isinstance(spec, str):
        return spec
    try:
        from routers.embeddings import embedder_from_spec

        return embedder_from_spec(spec)
    except ImportError:  # pragma: no cover
        from routers.embeddings import build_embedder

        return build_embedder(spec)


# --- general data -----------------------------------------------------------------------------------


def general_data(cfg: EvalConfig) -> dict:
    """The training mix: all prompts by source (for decontamination and similarity) and a summary
    of its strong-vs-weak rows (what the general-data checkpoints learn from)."""
    from routers.training.data import load_mix, strong_weak_pairs

    df = load_mix(cfg.mix)
    if df.empty:
        raise ConfigError("the training mix has no rows; check --mix")
    by_source = {str(s): list(dict.fromkeys(g["prompt"].tolist())) for s, g in df.groupby("source")}
    if cfg.strong_models and cfg.weak_models:
        pairs = strong_weak_pairs(df, strong_models=list(cfg.strong_models), weak_models=list(cfg.weak_models))
        classes = {"strong": list(cfg.strong_models), "weak": list(cfg.weak_models)}
    else:
        from routers.data.tiers import compute_tiers

        table = compute_tiers(df)
        pairs = strong_weak_pairs(df, tiers=table)
        classes = {"strong": table.strong_models(), "weak": table.weak_models()}
    if pairs.empty:
        raise ConfigError("no strong-vs-weak rows in the training mix for the chosen model classes")
    return {
        "by_source": by_source,
        "n_prompts": int(pairs.loc[pairs["weight"] > 0, "prompt"].nunique()),
        "n_pairs": int(len(pairs)),
        "classes": classes,
    }


# --- scoring ----------------------------------------------------------------------------------------


def _score_router(spec: str, bench: Benchmark, cache: ScoreStore, progress: bool) -> tuple[np.ndarray, dict]:
    from routers.registry import default_checkpoint_dir, load_router, read_config

    path = Path(spec)
    ckpt = path if path.is_dir() else default_checkpoint_dir() / spec
    if ckpt.is_dir():
        cfg = read_config(ckpt)
        trained_on = (cfg.get("info") or {}).get("sources") or []
        if bench.name in trained_on:
            raise ConfigError(f"checkpoint {ckpt.name} was trained on {bench.name}'s own outcomes, so its score "
                              f"there is in-sample; its recipe's cross-fitted and leave-one-benchmark-out "
                              f"figures are in the protocol section")
        rid = f"ckpt:{checkpoint_fingerprint(ckpt)}"
        info = {"checkpoint": str(ckpt), "router": cfg["router"], "config": f"checkpoint {ckpt.name} ({GENERAL})"}
    else:
        rid = f"router:{spec}"
        info = {"checkpoint": None, "router": spec, "config": "no checkpoint"}
    hit = cache.get(rid, bench.prompts)
    if hit is not None:
        return hit, {**info, "cached": True}
    router = load_router(spec)
    batch = 256
    parts = []
    for start in _tqdm(range(0, len(bench), batch), progress, desc=f"score {spec} on {bench.name}", unit="batch"):
        parts.append(np.asarray(router.score(bench.prompts[start:start + batch]), dtype=np.float64))
    scores = np.concatenate(parts) if parts else np.zeros(0)
    if spec != "random":
        cache.put(rid, bench.prompts, scores)
    return scores, {**info, "cached": False}


def _row(name: str, config: str, scores: np.ndarray, bench: Benchmark, rnd_apgr: float, **extra) -> dict:
    s = m.summarize(scores, bench.strong, bench.weak)
    qual = m.quality_curve(scores, bench.strong, bench.weak, s["grid"])
    return {
        "router": name, "config": config, "apgr": s["apgr"], "cpt50": s["cpt50"], "cpt80": s["cpt80"],
        "auc": s["auc"], "improvement": s["apgr"] / rnd_apgr - 1.0, "pgr": s["pgr"],
        "quality": qual.tolist(), **extra,
    }


def evaluate(cfg: EvalConfig) -> dict:
    """Run the whole evaluation; returns the JSON-able result."""
    routers = [r.strip() for r in cfg.routers if r.strip()]
    special = {"random", "oracle", "length"}
    cache = ScoreStore(cfg.cache_dir, enabled=cfg.use_cache)
    emb = _embedder(cfg.embedder) if cfg.decontaminate else None
    result: dict = {
        "settings": {
            "routers": routers, "benchmarks": list(cfg.benchmarks), "folds": cfg.folds, "seed": cfg.seed,
            "n_random": cfg.n_random, "decontaminate": cfg.decontaminate,
            "threshold": cfg.threshold, "embedder": getattr(emb, "name", None),
            "prices": {"strong": cfg.strong_price, "weak": cfg.weak_price},
            "apgr_grid": "11 points 0..100% strong calls, trapezoid (RouteLLM evaluate.py)",
        },
        "benchmarks": {},
    }
    src_emb: dict[str, np.ndarray] = {}
    if cfg.decontaminate:
        gen = general_data(cfg)
        result["general_data"] = {
            "sources": {k: len(v) for k, v in gen["by_source"].items()},
            "strong_weak_pairs": gen["n_pairs"], "unique_prompts_with_targets": gen["n_prompts"],
            "classes": gen["classes"],
        }
        for src, prompts in gen["by_source"].items():
            log.info("embedding %d training prompts of %s", len(prompts), src)
            src_emb[src] = emb.embed(prompts, progress=cfg.progress)

    golden_cache: dict = {}
    for bname in cfg.benchmarks:
        bench = load_benchmark(bname, cfg.data_dir)
        b_emb = emb.embed(bench.prompts, progress=cfg.progress) if emb is not None else None
        contamination = {"shipped_list": bench.dropped.get("shipped contaminated list", 0)}
        if cfg.decontaminate and src_emb:
            bench, b_emb, rep = decontaminate(bench, b_emb, src_emb, cfg.threshold)
            contamination["embedding"] = rep
        rnd = random_baseline(bench.strong, bench.weak, n_trials=cfg.n_random, seed=cfg.seed)
        rnd_apgr = rnd["apgr"]["mean"]
        grid = np.array(rnd["grid"])
        rows = [
            _row("length", "none (prompt length)", length_scores(bench.prompts), bench, rnd_apgr),
        ]
        oracle_pgr = m.oracle_pgr_curve(bench.strong, bench.weak, grid)
        oracle = {
            "apgr": m.apgr_from_curve(oracle_pgr, grid), "cpt50": m.cpt_from_curve(oracle_pgr, grid, 0.5),
            "cpt80": m.cpt_from_curve(oracle_pgr, grid, 0.8), "pgr": oracle_pgr.tolist(),
            "quality": m.oracle_quality_curve(bench.strong, bench.weak, grid).tolist(),
        }
        similarity: dict[str, float] = {}
        all_train = np.vstack(list(src_emb.values())) if src_emb else None
        if all_train is not None:
            similarity[GENERAL] = benchmark_similarity(b_emb, all_train)
            if len(src_emb) > 1:
                for src, e_src in src_emb.items():
                    similarity[f"{src} only"] = benchmark_similarity(b_emb, e_src)
        skipped = {}
        for spec in _tqdm(routers, cfg.progress, desc=f"routers on {bench.name}", unit="router"):
            if spec in special:
                continue
            try:
                scores, info = _score_router(spec, bench, cache, cfg.progress)
                rows.append(_row(spec, info["config"], scores, bench, rnd_apgr,
                                 checkpoint=info["checkpoint"], cached=info["cached"]))
            except (RoutersError, ImportError) as exc:
                log.warning("router %s skipped on %s: %s", spec, bench.name, exc)
                skipped[spec] = str(exc)
        protocol, kept = {}, {}
        for name in cfg.recipes:
            protocol[name] = _protocol_rows(name, bench, cfg, rnd_apgr, golden_cache, kept)
        comparisons = _compare_recipes(cfg.recipes, kept, bench)
        result["benchmarks"][bench.name] = {
            "n": len(bench), "n_original": bench.n_original, "scale": bench.scale,
            "strong_model": bench.strong_model, "weak_model": bench.weak_model,
            "strong_score": bench.display(bench.strong_mean), "weak_score": bench.display(bench.weak_mean),
            "dropped": dict(bench.dropped), "contamination": contamination,
            "random": {k: v for k, v in rnd.items()}, "oracle": oracle, "rows": rows,
            "similarity": similarity, "skipped": skipped,
            "cost": cost_analysis(rows, rnd, cfg.strong_price, cfg.weak_price),
            "protocol": protocol,
            "recipe_comparisons": comparisons,
        }
    return result


def _golden(embedder_spec: str, data_dir, cache: dict, progress: bool) -> dict:
    """Every golden source with its embeddings under one embedder (cached per run)."""
    from routers.data.golden import GOLDEN_SOURCES, load_golden
    from routers.evaluation.protocol import Labelled

    if embedder_spec not in cache:
        emb = _embedder(embedder_spec)
        data_root = Path(data_dir).parent if data_dir else None
        cache[embedder_spec] = {n: Labelled(src, emb.embed(src.prompts, progress=progress))
                                for n in GOLDEN_SOURCES for src in [load_golden(n, data_root)]}
        cache[embedder_spec]["__embedder__"] = emb
    return cache[embedder_spec]


def _compare_recipes(names: Sequence[str], kept: dict, bench: Benchmark) -> list[dict]:
    """Each later recipe against the first (the served default's), per protocol row: the APGR
    difference on the same questions with a paired bootstrap 95 % interval."""
    from routers.evaluation.protocol import paired_bootstrap

    out = []
    for other in names[1:]:
        for (rec, protocol), scores in kept.items():
            if rec == other and (names[0], protocol) in kept:
                res = paired_bootstrap(scores, kept[(names[0], protocol)], bench.strong, bench.weak)
                out.append({"a": other, "b": names[0], "protocol": protocol, **res})
    return out


def _protocol_rows(name: str, bench: Benchmark, cfg: EvalConfig, rnd_apgr: float, cache: dict,
                   kept: dict | None = None) -> dict:
    """(i), (ii) and (iii) of one recipe on one benchmark, as report rows."""
    from routers.data.golden import GoldenSource
    from routers.evaluation.protocol import Labelled, recipe, run_protocol

    rec = recipe(name)
    golden = _golden(rec.embedder if rec.embedder != "all-MiniLM-L6-v2" else None, cfg.data_dir, cache, cfg.progress)
    emb = golden["__embedder__"]
    rng = 9.0 if bench.scale == "grade" else 1.0
    target = Labelled(GoldenSource(bench.name, list(bench.prompts), np.asarray(bench.strong, float),
                                   np.asarray(bench.weak, float), rng), emb.embed(bench.prompts))
    general = [v for k, v in golden.items() if k not in (bench.name, "__embedder__")]
    res = run_protocol(rec, target, general, folds=cfg.folds, seed=cfg.seed, curve=cfg.curve, draws=cfg.curve_draws,
                       embedder=emb)
    rows = []
    for r in res["rows"]:
        scores = r.pop("scores")
        if kept is not None:
            kept[(name, r["protocol"])] = scores
        row = _row(name, r["protocol"], scores, bench, rnd_apgr)
        row.update({k: v for k, v in r.items() if k not in ("protocol", "apgr")})
        rows.append(row)
    res["rows"] = rows
    res["embedder"] = getattr(emb, "name", rec.embedder)
    return res


def cost_analysis(rows: list[dict], rnd: dict, strong_price: float = GPT4_PRICE,
                  weak_price: float = MIXTRAL_PRICE) -> dict:
    """Table 6 / appendix D: for the best learned router (highest APGR, excluding the length
    baseline), the cost saving vs. random at CPT(50%) and CPT(80%) (random's strong-call share over
    the router's) and the blended $ per million tokens c * strong + (1 - c) * weak."""
    learned = [r for r in rows if r["router"] != "length"]
    if not learned:
        return {}
    best = max(learned, key=lambda r: r["apgr"])
    out = {"router": best["router"], "config": best["config"], "prices": {"strong": strong_price, "weak": weak_price}}
    for key in ("cpt50", "cpt80"):
        c_r, c_rand = best[key], rnd[key]["mean"]
        out[key] = {
            "router_strong_share": c_r, "random_strong_share": c_rand,
            "saving_vs_random": (c_rand / c_r) if c_r > 0 else float("inf"),
            "router_usd_per_mtok": c_r * strong_price + (1 - c_r) * weak_price,
            "random_usd_per_mtok": c_rand * strong_price + (1 - c_rand) * weak_price,
            "strong_only_usd_per_mtok": strong_price,
        }
    return out
