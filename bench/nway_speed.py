"""``rayroute bench-nway``: what N-way routing adds to a request's decision, in process (no Ray).

The ingress's decision path (``ChatService.route``: the model name's grammar, the router's scoring
and, for N-way, the cost estimate and the ranking by ``routers.nway.selection.rank``) is timed per
request for two services on the same prompts, interleaved request by request so that load on the
machine falls on both alike:

- two-model: ``linear_static`` (checkpoints/linear_static; the served default when this was
  measured), in process;
- N-way: a quality router over four models with prices, in process (``deployments.nway``): the
  given checkpoint (its first four models, at this benchmark's four prices), else a kNN fitted here on real prompts with the static embedder and synthetic
  outcomes (the outcomes change the choices, not the time).

p50 / p99 per request for each, median and range over ``runs``; the target is ≤ 2 ms for the N-way
decision at p50. Test prompts are real (MT Bench, GSM8K, MMLU) and disjoint from the kNN's
training prompts. Figures depend on the machine: the JSON records its CPUs and load average.

BLAS runs on ``threads`` threads (default 1), as in an ingress replica, where Ray sets
OMP_NUM_THREADS to the replica's whole CPUs (1 for a fractional num_cpus). Why it matters: on a
2-core machine with other work on it, a 2-thread OpenBLAS matrix-vector product (the kNN's
similarities) waits for a busy core and takes milliseconds instead of 0.1 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_P50_MS = 2.0
#: four models, cheapest first, $ per 1M (prompt, completion) tokens
MODELS = {"cheap": (0.1, 0.1), "small": (0.6, 0.6), "mid": (1.0, 2.0), "big": (10.0, 30.0)}


def fit_knn(path: Path, prompts: list[str], k: int, seed: int = 0) -> Path:
    """A kNN quality router over ``MODELS`` fitted on ``prompts`` (static embedder), synthetic outcomes."""
    from routers.embeddings import build_embedder
    from routers.nway.knn import KNNQualityRouter

    rng = np.random.default_rng(seed)
    outcomes = (rng.random((len(prompts), len(MODELS))) < np.array([0.4, 0.55, 0.7, 0.85])).astype(np.float64)
    embedder = build_embedder("static", cache=False)
    return KNNQualityRouter.fit(prompts, outcomes, list(MODELS), embedder, k=k,
                                info={"note": "bench-nway: synthetic outcomes"}).save(path)


def services(checkpoint: str | Path, models: dict[str, tuple[float, float]]) -> tuple[Any, Any]:
    """(two-model service with linear_static in process, N-way service), as the ingress builds them."""
    from deployments.chat import ChatService, ServedModels
    from deployments.config import IngressArgs, NWayArgs, RouterConfig
    from deployments.metrics import ServingMetrics
    from deployments.nway import NWayRouting
    from deployments.router_replica import InProcessRouter

    args = IngressArgs(api_keys_env=None)
    served = ServedModels(strong="strong", weak="weak", default_router="linear_static")
    two = ChatService({"linear_static": InProcessRouter("linear_static", RouterConfig(source="linear_static")
                                                        .model_dump()).start()},
                      None, None, served, args, ServingMetrics(export=False))
    nway_args = NWayArgs.model_validate({
        "models": [{"name": n, "remote": {"base_url": "http://127.0.0.1:1/v1", "model": n},  # never called
                    "price": {"input_usd_per_1m_tokens": p[0], "output_usd_per_1m_tokens": p[1]}}
                   for n, p in models.items()],
        "routers": [{"alias": "nway", "source": str(checkpoint)}]})
    nway = ChatService({}, None, None, served, args, ServingMetrics(export=False),
                       nway=NWayRouting.from_args(nway_args).start())
    return two, nway


async def _time(service: Any, model: str, prompt: str) -> float:
    from deployments.protocol import RouteRequest

    t = time.perf_counter()
    await service.route(RouteRequest(model=model, messages=[{"role": "user", "content": prompt}]))
    return time.perf_counter() - t


async def _run(two: Any, nway: Any, prompts: list[str]) -> dict[str, np.ndarray]:
    lat: dict[str, list[float]] = {"two_model": [], "nway": []}
    for i, p in enumerate(prompts):  # interleaved, order alternating, so drift falls on both
        order = [("two_model", two, "router-linear_static"), ("nway", nway, "router-nway-cost0.2")]
        for name, svc, model in order if i % 2 == 0 else order[::-1]:
            lat[name].append(await _time(svc, model, p))
    return {k: np.array(v) * 1000 for k, v in lat.items()}


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def _blas_threads(threads: int | None) -> Any:
    """A context limiting BLAS/OpenMP threads (threadpoolctl, scikit-learn's dependency)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)


def bench_nway(out_dir: str | Path, checkpoint: str | None = None, train_prompts: int = 4000,
               test_prompts: int = 300, runs: int = 3, k: int = 10, warmup: int = 20, threads: int | None = 1,
               command: str | None = None) -> dict[str, Any]:
    with _blas_threads(threads):
        return _bench_nway(out_dir, checkpoint, train_prompts, test_prompts, runs, k, warmup, threads, command)


def _bench_nway(out_dir: str | Path, checkpoint: str | None, train_prompts: int, test_prompts: int, runs: int,
                k: int, warmup: int, threads: int | None, command: str | None) -> dict[str, Any]:
    from bench.router_speed import real_prompts

    load_before = os.getloadavg()
    pool = real_prompts(train_prompts + test_prompts + warmup)
    train, test = pool[:train_prompts], pool[train_prompts:]
    with tempfile.TemporaryDirectory() as tmp:
        if checkpoint is None:
            t0 = time.perf_counter()
            source = fit_knn(Path(tmp) / "nway_knn", train, k)
            print(f"fitted a kNN on {len(train)} prompts in {time.perf_counter() - t0:.1f}s", flush=True)
            models = MODELS
        else:
            from routers.nway.registry import read_quality_config

            source = Path(checkpoint)
            # the checkpoint's first four models, at the bench's four prices
            vocab = read_quality_config(source)["models"][: len(MODELS)]
            models = dict(zip(vocab, MODELS.values()))
        two, nway = services(source, models)
        router = nway.nway.routers["nway"]
        asyncio.run(_run(two, nway, test[:warmup]))  # first-call allocations
        per_run = []
        for r in range(runs):
            lat = asyncio.run(_run(two, nway, test[warmup:]))
            row = {name: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99))}
                   for name, v in lat.items()}
            row["added_p50_ms"] = row["nway"]["p50_ms"] - row["two_model"]["p50_ms"]
            per_run.append(row)
            print(f"run {r + 1}: two-model p50 {row['two_model']['p50_ms']:.3f} ms p99 "
                  f"{row['two_model']['p99_ms']:.3f} ms | N-way p50 {row['nway']['p50_ms']:.3f} ms p99 "
                  f"{row['nway']['p99_ms']:.3f} ms", flush=True)
        describe = router.describe()
    summary = {
        "two_model_p50_ms": _stats([r["two_model"]["p50_ms"] for r in per_run]),
        "two_model_p99_ms": _stats([r["two_model"]["p99_ms"] for r in per_run]),
        "nway_p50_ms": _stats([r["nway"]["p50_ms"] for r in per_run]),
        "nway_p99_ms": _stats([r["nway"]["p99_ms"] for r in per_run]),
        "added_p50_ms": _stats([r["added_p50_ms"] for r in per_run]),
    }
    result = {
        "command": command,
        "what": "ChatService.route per request, in process (no Ray): two-model linear_static vs N-way "
                "(4 models, cost<0.2>), interleaved request by request",
        "machine": {"cpus": os.cpu_count(), "blas_threads": threads, "load_avg_1_5_15_before": list(load_before),
                    "load_avg_1_5_15_after": list(os.getloadavg())},
        "nway_router": {"checkpoint": str(checkpoint) if checkpoint else "fitted here (synthetic outcomes)",
                        **describe["router"]},
        "models_usd_per_1m": {m: list(p) for m, p in models.items()},
        "prompts": {"train": len(train) if checkpoint is None else None, "test": len(test) - warmup,
                    "warmup": warmup},
        "runs": per_run,
        "summary": summary,
        "target_nway_p50_ms": TARGET_P50_MS,
        "meets_target": summary["nway_p50_ms"]["median"] <= TARGET_P50_MS,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "results.md").write_text(markdown(result))
    print(markdown(result), end="")
    return result


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]

    def cell(key: str) -> str:
        v = s[key]
        return f"{v['median']:.3f} [{v['min']:.3f}, {v['max']:.3f}]"

    load = result["machine"]["load_avg_1_5_15_before"]
    router = result["nway_router"]
    lines = [
        "# N-way routing: decision time in the ingress (in process)",
        "",
        f"Command: `{result['command']}`" if result.get("command") else "Command: (not recorded)",
        "",
        f"{result['what']}. Router: {router.get('name')} over {len(result['models_usd_per_1m'])} models"
        + (f", {router['n_train']} training prompts" if router.get("n_train") else "")
        + f", embedder {router.get('embedder')}. {result['prompts']['test']} test prompts, "
        f"{len(result['runs'])} runs; median [range] over runs. Machine: {result['machine']['cpus']} CPUs, "
        f"load average {load[0]:.2f} at the start; BLAS threads: {result['machine']['blas_threads'] or 'default'}.",
        "",
        "| decision | p50 ms | p99 ms |",
        "|---|---|---|",
        f"| two-model (linear_static) | {cell('two_model_p50_ms')} | {cell('two_model_p99_ms')} |",
        f"| N-way (4 models) | {cell('nway_p50_ms')} | {cell('nway_p99_ms')} |",
        f"| N-way minus two-model | {cell('added_p50_ms')} | |",
        "",
        f"Target: the N-way decision ≤ {result['target_nway_p50_ms']:g} ms at p50: "
        f"{'met' if result['meets_target'] else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)
