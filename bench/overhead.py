"""``rayroute bench-overhead``: routing overhead through Ray Serve, as ratios from ONE run.

It starts a local Ray cluster, serves the router app from ``serve_config.yaml`` (at ``/``) and the
no-op app of the same shape (``bench.noop``, at ``/noop``) side by side with the same
deployment options, waits until both answer, then runs the load test (``bench.loadtest``, in
a subprocess because locust patches the standard library) in two modes:

1. ``route-vs-noop``: ``/v1/route`` vs. the no-op app;
2. ``chat-vs-direct``: chat through the router vs. chat sent straight to the weak model.

The two targets of a mode alternate in time slices (``--slice-s``, 5 s) over the whole run, so
each is measured alone yet both see the same machine. ``measure_overhead`` is that measurement on
its own, for an app that is already running.

By default the router's score cache is off (``score_cache_entries: 0``) and every request sends a
prompt not sent before in the run, so the figures are the router's scoring cost. To measure the
cache, ``--score-cache-entries N --repeat-share R`` turns it on and makes a share R of requests
resend an earlier prompt; the result then carries the cache hit rate read from ``/v1/stats``.

Throughput settings (the issue's levers) are flags: ``RAY_SERVE_THROUGHPUT_OPTIMIZED``, access
logs off, ``max_ongoing_requests``. Everything stops by itself; traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.loopback import free_port
from routers.paths import REPO_ROOT


def _wait_ready(url: str, body: dict, timeout_s: float) -> float:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            r = httpx.post(url, json=body, timeout=30)
            if r.status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f}s")


def load_app_args(config: str | Path, router: str | None, score_cache_entries: int = 0) -> dict[str, Any]:
    cfg = yaml.safe_load(Path(config).read_text())
    args = dict(cfg["applications"][0]["args"])
    if router:  # keep only the router under test (and make it the default)
        keep = [r for r in args["routers"] if r["alias"] == router]
        if not keep:
            raise SystemExit(f"router {router!r} is not in {config}; it has {[r['alias'] for r in args['routers']]}")
        args["routers"], args["default_router"] = keep, router
    # measure scoring, not the score cache, unless asked: the load test cycles through its prompts,
    # so a cache would answer repeats at high request rates and flatter the router
    args["routers"] = [{**r, "score_cache_entries": score_cache_entries} for r in args["routers"]]
    return args


def _cache_stats(url: str, router: str, api_key_env: str = "RAYROUTE_API_KEYS") -> dict[str, Any]:
    """Cache hits over routing decisions, from the ingress's own counters (one ingress replica's;
    they count every decision since the app started, warm-up included)."""
    import httpx

    from bench.loadtest import ingress_key

    key = ingress_key(api_key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    stats = httpx.get(url + "/v1/stats", headers=headers, timeout=30).json()
    decisions = stats["router_decisions"].get(router, 0)
    hits = stats["router_cache_hits"].get(router, 0)
    return {"decisions": decisions, "hits": hits, "hit_rate": round(hits / decisions, 4) if decisions else None}


def measure_overhead(
    url: str,
    model: str,
    direct_model: str,
    modes: tuple[str, ...] = ("route-vs-noop", "chat-vs-direct"),
    concurrency: int = 16,
    chat_concurrency: int = 4,
    duration_s: float = 30.0,
    warmup: int = 50,
    chat_max_tokens: int = 8,
    out_dir: str | Path = REPO_ROOT / "runs" / "overhead",
    repeat_share: float = 0.0,
    cache_router: str | None = None,
    slice_s: float = 5.0,
) -> dict[str, Any]:
    """Run the load-test modes against a running router app (with the no-op app at ``/noop``) and
    return their summaries with the headline ratios; ``cache_router`` adds that router's cache
    hit rate. The load test runs in a subprocess (locust patches the standard library)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for mode in modes:
        chat = mode.startswith("chat")
        cmd = [sys.executable, "-m", "cli", "loadtest", "--url", url, "--mode", mode,
               "--model", model, "--concurrency", str(chat_concurrency if chat else concurrency),
               "--duration-s", str(duration_s), "--warmup", str(warmup), "--out", str(out),
               "--max-tokens", str(chat_max_tokens), "--direct-model", direct_model,
               "--repeat-share", str(repeat_share), "--slice-s", str(slice_s)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 300)
        print(proc.stdout, end="", flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise RuntimeError(f"load test {mode} failed with exit code {proc.returncode}")
        results[mode] = json.loads((out / f"loadtest-{mode}.json").read_text())
    if cache_router:
        results["router_cache"] = _cache_stats(url, cache_router)
    rn = results.get("route-vs-noop", {}).get("comparison")
    if rn:
        results["route_vs_noop_throughput_ratio"] = rn["throughput_ratio"]
        results["route_vs_noop_p99_ratio"] = rn["p99_ratio"]
    cd = results.get("chat-vs-direct", {}).get("comparison")
    if cd:
        results["chat_routing_overhead_p50_ms"] = cd["p50_difference_ms"]
    return results


HEADLINES = ("route_vs_noop_throughput_ratio", "route_vs_noop_p99_ratio", "chat_routing_overhead_p50_ms")


def summarise_runs(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of each headline figure over the runs that measured it."""
    out: dict[str, Any] = {}
    for key in HEADLINES:
        vals = [float(one[key]) for one in measured if key in one]
        if vals:
            out[key] = float(statistics.median(vals))
            out[key + "_range"] = [min(vals), max(vals)]
            out[key + "_runs"] = vals
    return out


def bench_overhead(
    config: str | Path = REPO_ROOT / "serve_config.yaml",
    router: str | None = "mf",
    concurrency: int = 16,
    duration_s: float = 30.0,
    warmup: int = 50,
    modes: tuple[str, ...] = ("route-vs-noop", "chat-vs-direct"),
    chat_concurrency: int = 4,
    chat_max_tokens: int = 8,
    throughput_optimized: bool = True,
    max_ongoing_requests: int | None = 256,
    out_dir: str | Path = REPO_ROOT / "runs" / "overhead",
    start_timeout_s: float = 600,
    score_cache_entries: int = 0,
    repeat_share: float = 0.0,
    slice_s: float = 5.0,
    runs: int = 1,
    command: str | None = None,
) -> dict[str, Any]:
    """Boot the router app and the no-op app of the same shape on a local cluster and measure them
    ``runs`` times (each run in ``out_dir/run<i>`` when ``runs`` > 1). The headline figures are
    ratios of noisy measurements, so with several runs the summary gives each one's median and
    range; every run's raw output is kept."""
    from bench.loadtest import LoadTestError, check_slices

    if runs < 1:
        raise LoadTestError(f"runs must be >= 1, got {runs!r}")

    # arguments the load test would refuse are refused before a cluster starts, not after the boot
    if not 0.0 <= repeat_share < 1.0:
        raise LoadTestError(f"repeat_share must be in [0, 1), got {repeat_share!r}")
    check_slices(duration_s, slice_s, 2)  # every mode compares two targets
    args = load_app_args(config, router, score_cache_entries)
    deps = args.setdefault("deployments", {})
    if max_ongoing_requests:
        for name in ("ingress", "router"):
            deps.setdefault(name, {})["max_ongoing_requests"] = max_ongoing_requests
    if throughput_optimized:
        os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")  # busy 2-core node: see serve.sh
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    import ray
    from ray import serve

    from bench.noop import build_noop_app
    from bench.local_ray import shutdown
    from deployments.app import build_app
    from deployments.config import AppArgs

    app_args = AppArgs.model_validate(args)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"command": command, "router": router, "runs": runs, "concurrency": concurrency, "duration_s": duration_s,
                               "throughput_optimized": throughput_optimized, "access_log": False,
                               "max_ongoing_requests": max_ongoing_requests, "cpus": os.cpu_count(),
                               "score_cache_entries": score_cache_entries, "repeat_share": repeat_share,
                               "slice_s": slice_s, "placement": app_args.routers[0].placement,
                               "noop_placement": app_args.routers[0].placement}
    try:
        ray.init(include_dashboard=False, log_to_driver=False, namespace="rayroute-bench")
        serve.start(http_options={"host": "127.0.0.1", "port": port},
                    logging_config={"enable_access_log": False})
        t0 = time.monotonic()
        serve.run(build_noop_app(app_args), name="noop", route_prefix="/noop", blocking=False)
        serve.run(build_app(app_args), name="rayroute", route_prefix="/", blocking=False)
        model = f"router-{app_args.default_router}"
        msg = {"model": model, "messages": [{"role": "user", "content": "warm up please, a short question"}]}
        _wait_ready(url + "/noop/v1/route", msg, start_timeout_s)
        _wait_ready(url + "/v1/route", msg, start_timeout_s)
        if "chat-vs-direct" in modes:
            _wait_ready(url + "/v1/chat/completions", {**msg, "max_tokens": 2}, start_timeout_s)
        results["boot_s"] = round(time.monotonic() - t0, 1)
        print(f"bench-overhead: both apps up in {results['boot_s']}s at {url}", flush=True)
        measured = []
        for i in range(runs):
            run_out = out / f"run{i + 1}" if runs > 1 else out
            load = os.getloadavg()[0]  # context for the noise: other work on the same cores
            one = measure_overhead(
                url, model, app_args.weak_model.served_model_name, modes, concurrency, chat_concurrency,
                duration_s, warmup, chat_max_tokens, run_out, repeat_share,
                cache_router=app_args.default_router if score_cache_entries else None, slice_s=slice_s)
            one["load_average_1m_before"] = round(load, 2)
            measured.append(one)
        if runs == 1:
            results.update(measured[0])
        else:
            results["per_run"] = [{k: v for k, v in one.items() if not isinstance(v, dict)} for one in measured]
            results.update(summarise_runs(measured))
    finally:
        shutdown()
    (out / "bench-overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, dict)}, indent=2))
    return results
