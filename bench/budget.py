"""``rayroute bench-budget``: does live budget control hold a strong-call share when the traffic mix
moves? A replay through the real server, against a static α calibrated once.

The replay: ``n_per_phase`` requests (2,000) of each of three phases, in order: AlpacaEval
instructions, then GSM8K questions, then MMLU questions (``../shared/data``, drawn with a seed;
AlpacaEval has 805 instructions and GSM8K 1,319 questions, so they repeat). Every request is a chat
completion ``router-<router>-strong<target>`` through the real app (Ray Serve, the served default
router ``linear_static`` scoring in the ingress, budget control on, ``ingress_replicas`` replicas)
with both models replaced by a local fake OpenAI-compatible server (``bench.fake_openai``), so it
runs on a CPU machine and measures routing, not models.

What it reports, per run:

- **static α**: the threshold that start-up calibration gives for the target on AlpacaEval (the
  first 500 instructions, as ``serve_config.yaml`` calibrates). Its share in each phase is computed
  from the scores the server returned (``x-router-p-strong``; the decision is a pure function of
  score and α, so this is the share that model name would have had);
- **the controller**: the realised share in every 500-request window (sliding, step 1) that lies in
  a phase after its first 200 requests; the worst deviation from the target, per phase;
- **quality**: PGR (the paper's Eq. 6) on the replayed GSM8K and MMLU questions (the ones with
  golden outcomes) of the controller's decisions and of a static α giving the same strong share on
  those requests; and APGR over shares 0..1, the controller replayed in process on the same scores
  at each target of the grid against static α at each share;
- **decision path**: what budget control adds to a decision in process (``decision_path_bench``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from routers.paths import REPO_ROOT

PHASES = ("alpaca_eval", "gsm8k", "mmlu")


# --- the replayed traffic -----------------------------------------------------------------------------


def replay_stream(n_per_phase: int = 2000, seed: int = 0, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The requests in order: ``{"phase", "prompt", "strong", "weak"}`` (golden outcomes of the
    paper's strong / weak pair; None for AlpacaEval, which has none)."""
    from routers.calibration import read_prompts
    from routers.data.benchmarks import load_gsm8k, load_mmlu
    from routers.paths import default_data_dir

    data = Path(data_dir) if data_dir else default_data_dir()
    rng = np.random.default_rng(seed)
    alpaca = read_prompts(data / "preferences" / "alpaca_eval" / "instructions.jsonl", "instruction")
    out: list[dict[str, Any]] = [{"phase": "alpaca_eval", "prompt": alpaca[i], "strong": None, "weak": None}
                                 for i in rng.choice(len(alpaca), n_per_phase)]
    for name, bench in (("gsm8k", load_gsm8k(data / "benchmarks")), ("mmlu", load_mmlu(data / "benchmarks"))):
        idx = rng.choice(len(bench.prompts), n_per_phase, replace=n_per_phase > len(bench.prompts))
        out += [{"phase": name, "prompt": bench.prompts[i], "strong": float(bench.strong[i]),
                 "weak": float(bench.weak[i])} for i in idx]
    return out


def static_alpha(router: str, target: float, max_prompts: int = 500, data_dir: str | Path | None = None) -> float:
    """α for ``target`` calibrated on the first ``max_prompts`` AlpacaEval instructions (as the
    server's start-up calibration does)."""
    from routers.calibration import read_prompts, threshold_for_fraction
    from routers.paths import default_data_dir
    from routers.registry import load_router

    data = Path(data_dir) if data_dir else default_data_dir()
    prompts = read_prompts(data / "preferences" / "alpaca_eval" / "instructions.jsonl", "instruction")[:max_prompts]
    return threshold_for_fraction(np.asarray(load_router(router).score(prompts), dtype=np.float64), target)


# --- analysis (pure: tested on synthetic records) ---------------------------------------------------------


def window_shares(strong: np.ndarray, window: int) -> np.ndarray:
    cs = np.concatenate([[0], np.cumsum(strong.astype(np.int64))])
    return (cs[window:] - cs[:-window]) / window


def pgr(route_strong: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> float:
    gap = float(np.mean(strong) - np.mean(weak))
    return float((np.mean(np.where(route_strong, strong, weak)) - np.mean(weak)) / gap)


def analyse(records: list[dict[str, Any]], stream: list[dict[str, Any]], target: float, alpha_static: float,
            window: int = 500, skip: int = 200, tolerance: float = 0.03) -> dict[str, Any]:
    """The figures of one served run. ``records[i]``: the server's answer to ``stream[i]``:
    ``{"p_strong", "threshold", "strong"}``."""
    from routers.base import strong_mask
    from routers.calibration import threshold_for_fraction

    p = np.array([r["p_strong"] for r in records], dtype=np.float64)
    ctl = np.array([r["strong"] for r in records], dtype=bool)
    phases = np.array([s["phase"] for s in stream])
    static = strong_mask(p, alpha_static)
    out: dict[str, Any] = {"target": target, "static_alpha": alpha_static, "window": window, "skip": skip,
                           "tolerance": tolerance, "overall_share": float(ctl.mean()), "phases": {}}
    ok = True
    for name in PHASES:
        idx = np.flatnonzero(phases == name)
        if idx.size == 0:
            continue
        held = ctl[idx[skip:]]
        shares = window_shares(held, window) if held.size >= window else np.array([held.mean()])
        worst = float(np.max(np.abs(shares - target)))
        ok &= worst <= tolerance + 1e-12
        alphas = np.array([records[i]["threshold"] for i in idx])
        out["phases"][name] = {
            "requests": int(idx.size),
            "static_share": float(static[idx].mean()),
            "static_drift_points": round(100 * (float(static[idx].mean()) - target), 2),
            "controller_share": float(ctl[idx].mean()),
            "controller_share_after_skip": float(held.mean()),
            "windows": int(shares.size),
            "window_share_min": float(shares.min()), "window_share_max": float(shares.max()),
            "worst_window_deviation_points": round(100 * worst, 2),
            "alpha_median": float(np.median(alphas)), "alpha_min": float(alphas.min()), "alpha_max": float(alphas.max()),
        }
    out["every_window_within_tolerance"] = bool(ok)
    labelled = np.array([s["strong"] is not None for s in stream])
    if labelled.any():
        s_ = np.array([s["strong"] for s, lab in zip(stream, labelled) if lab], dtype=np.float64)
        w_ = np.array([s["weak"] for s, lab in zip(stream, labelled) if lab], dtype=np.float64)
        share = float(ctl[labelled].mean())
        alpha_eq = threshold_for_fraction(p[labelled], share)
        static_eq = strong_mask(p[labelled], alpha_eq)
        out["quality"] = {
            "requests": int(labelled.sum()), "phases": [n for n in PHASES if n != "alpaca_eval"],
            "controller_share": share, "controller_pgr": pgr(ctl[labelled], s_, w_),
            "static_equal_share_alpha": alpha_eq, "static_equal_share": float(static_eq.mean()),
            "static_equal_share_pgr": pgr(static_eq, s_, w_),
        }
        out["quality"]["pgr_cost_of_control"] = out["quality"]["static_equal_share_pgr"] - out["quality"]["controller_pgr"]
    return out


def simulate_apgr(p: np.ndarray, stream: list[dict[str, Any]], grid: np.ndarray | None = None,
                  controller: Callable[[float], Any] | None = None) -> dict[str, Any]:
    """APGR on the labelled requests of the controller (replayed in process on the served scores, in
    order, one run per target of ``grid``) and of static α (the paper's APGR of the scores)."""
    from routers.budget import ShareController
    from routers.evaluation.metrics import apgr

    grid = np.linspace(0.0, 1.0, 11) if grid is None else grid
    make = controller or (lambda t: ShareController(t))
    labelled = np.array([s["strong"] is not None for s in stream])
    s_ = np.array([s["strong"] for s in stream if s["strong"] is not None], dtype=np.float64)
    w_ = np.array([s["weak"] for s in stream if s["weak"] is not None], dtype=np.float64)
    shares, pgrs = [], []
    for t in grid:
        c = make(float(t))
        x = np.array([c.decide(float(q))[0] for q in p])
        shares.append(float(x[labelled].mean()))
        pgrs.append(pgr(x[labelled], s_, w_))
    order = np.argsort(shares)
    xs, ys = np.array(shares)[order], np.array(pgrs)[order]
    # the controller's curve: PGR against the share it realised on these requests, from (0, 0) to (1, 1)
    xs, ys = np.concatenate([[0.0], xs, [1.0]]), np.concatenate([[0.0], ys, [1.0]])
    ctl_apgr = float(np.mean(np.interp(np.linspace(0, 1, 11), xs, ys)))
    return {"grid": [float(t) for t in grid], "controller_shares": shares, "controller_pgr": pgrs,
            "controller_apgr": ctl_apgr, "static_apgr": float(apgr(p[labelled], s_, w_))}


# --- the decision path, in process -----------------------------------------------------------------------


def decision_path_bench(n: int = 20000, repeats: int = 5, seed: int = 0) -> dict[str, Any]:
    """What budget control adds to one routing decision in the ingress process: ``ChatService.decide``
    with a constant in-process router, static α vs a live target (the α look-up, the pending report),
    interleaved in blocks; plus the shared state's cost per decision it takes in (``BudgetState.sync``
    with 20 decisions a report, the α recomputed). Medians of ``repeats`` blocks."""
    from deployments.budget import BudgetClient, BudgetState
    from deployments.chat import ChatService, ServedModels
    from deployments.config import BudgetArgs, IngressArgs
    from deployments.metrics import ServingMetrics
    from deployments.protocol import RouterVerdict, parse_model_name
    from routers.base import strong_mask

    rng = np.random.default_rng(seed)
    scores = rng.random(n)

    class Const:
        def __init__(self):
            self.i = 0

        async def _route(self, messages, threshold=None, fraction=None):
            self.i += 1
            p = float(scores[self.i % n])
            a = 0.5 if threshold is None else threshold
            return RouterVerdict(p_strong=p, threshold=a, strong=bool(strong_mask([p], a)[0]))

    class Handle:
        def __init__(self, r):
            self.route = type("M", (), {"remote": staticmethod(r._route)})()

    args = BudgetArgs(enabled=True)
    state = BudgetState(args.model_dump(), {"strong": (2.5, 10.0), "weak": (0.0, 0.0)})
    metrics = ServingMetrics(export=False)
    client = BudgetClient(None, args, {}, {}, metrics)
    client.autosync = False
    models = ServedModels(strong="s", weak="w", default_router="r")
    plain = ChatService({"r": Handle(Const())}, None, None, models, IngressArgs(api_keys_env=None), metrics)
    held = ChatService({"r": Handle(Const())}, None, None, models, IngressArgs(api_keys_env=None), metrics, budget=client)
    sel_static, sel_live = parse_model_name("router-r-0.5"), parse_model_name("router-r-strong0.3")
    msgs = [{"role": "user", "content": "q"}]

    async def block(svc, sel, k):
        t = np.empty(k)
        for i in range(k):
            t0 = time.perf_counter()
            await svc.decide(sel, msgs)
            t[i] = time.perf_counter() - t0
            if svc is held and i % 20 == 19:  # what the background sync does, outside the timed path
                client.apply(state.sync("bench", client._take_report()))
        return t

    async def run():
        res = {"static": [], "live": []}
        for _ in range(repeats):
            res["static"].append(float(np.median(await block(plain, sel_static, n // repeats))))
            res["live"].append(float(np.median(await block(held, sel_live, n // repeats))))
        return res

    res = asyncio.run(run())
    # the shared state's side: one report of 20 decisions, α recomputed, per call
    st = BudgetState(args.model_dump(), {"strong": (2.5, 10.0), "weak": (0.0, 0.0)})
    reps = []
    for j in range(200):
        ps = scores[(j * 20) % n:(j * 20) % n + 20]
        rep = {"keys": {"r:-:share=0.3": {"router": "r", "kind": "share", "value": 0.3, "scores": ps.tolist(),
                                          "strong": (ps > 0.7).tolist(), "costs": []}}, "tenant_usd": {}}
        t0 = time.perf_counter()
        st.sync("bench", rep)
        reps.append(time.perf_counter() - t0)
    static_ms, live_ms = 1e3 * statistics.median(res["static"]), 1e3 * statistics.median(res["live"])
    return {"decisions": n, "repeats": repeats,
            "static_p50_ms": static_ms, "live_p50_ms": live_ms, "added_p50_ms": live_ms - static_ms,
            "block_p50_ms": {k: [1e3 * v for v in vs] for k, vs in res.items()},
            "state_sync_per_decision_ms": 1e3 * statistics.median(reps) / 20}


# --- the served run -----------------------------------------------------------------------------------------


def app_args(router: str, replicas: int, strong_url: str, weak_url: str, target: float,
             config: str | Path = REPO_ROOT / "serve_config.yaml") -> dict[str, Any]:
    cfg = yaml.safe_load(Path(config).read_text())
    args = dict(cfg["applications"][0]["args"])
    keep = [r for r in args["routers"] if r["alias"] == router]
    if not keep:
        raise SystemExit(f"router {router!r} is not in {config}")
    args["routers"], args["default_router"] = keep, router
    args["weak_model"] = {"api_base_url": weak_url, "model": "fake-weak", "served_model_name": "fake-weak",
                          "api_key_env": "BENCH_FAKE_KEY"}
    args["strong_model"] = {**args.get("strong_model", {}), "base_url": strong_url, "model": "fake-strong",
                            "api_key_env": "BENCH_FAKE_KEY", "max_retries": 0, "fallback": "error"}
    args["ingress"] = {**args.get("ingress", {}), "api_keys_env": None}
    args["budget"] = {"enabled": True}
    deps = args.setdefault("deployments", {})
    deps["ingress"] = {"num_replicas": replicas, "max_ongoing_requests": 256, "ray_actor_options": {"num_cpus": 0.1}}
    deps["weak_model"] = {"num_replicas": 1, "max_ongoing_requests": 256, "ray_actor_options": {"num_cpus": 0.05}}
    deps["strong_model"] = {"num_replicas": 1, "max_ongoing_requests": 256, "ray_actor_options": {"num_cpus": 0.05}}
    return args


async def _send_all(url: str, stream: list[dict[str, Any]], model: str, concurrency: int, max_tokens: int,
                    progress_every: int = 500) -> list[dict[str, Any]]:
    import httpx

    records: list[dict[str, Any] | None] = [None] * len(stream)
    next_i = 0
    t0 = time.monotonic()
    done = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_i, done
        while next_i < len(stream):
            i = next_i
            next_i += 1
            body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": stream[i]["prompt"]}]}
            for attempt in range(3):
                r = await client.post("/v1/chat/completions", json=body)
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.5)
            if r.status_code != 200:
                raise RuntimeError(f"request {i} ({stream[i]['phase']}) failed: HTTP {r.status_code} {r.text[:300]}")
            h = r.headers
            records[i] = {"p_strong": float(h["x-router-p-strong"]), "threshold": float(h["x-router-threshold"]),
                          "strong": h["x-routed-model"] == "fake-strong", "target": h.get("x-rayroute-budget-target"),
                          "t": round(time.monotonic() - t0, 3)}
            done += 1
            if done % progress_every == 0:
                el = time.monotonic() - t0
                print(f"  {done}/{len(stream)} requests, {done / el:.1f} req/s, "
                      f"strong so far {np.mean([x['strong'] for x in records if x]):.3f}", flush=True)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return records  # type: ignore[return-value]


def served_run(stream: list[dict[str, Any]], router: str, replicas: int, target: float, concurrency: int = 8,
               max_tokens: int = 16, start_timeout_s: float = 600) -> dict[str, Any]:
    """Boot the app with ``replicas`` ingress replicas, replay ``stream``, shut everything down."""
    import httpx

    from bench.fake_openai import FakeOpenAI, free_port
    from bench.local_ray import shutdown

    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    os.environ["BENCH_FAKE_KEY"] = "fake-key-not-a-secret"
    import ray
    from ray import serve

    from deployments.app import build_app

    strong, weak = FakeOpenAI("fake-strong").start(), FakeOpenAI("fake-weak").start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    model = f"router-{router}-strong{target:g}"
    try:
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, namespace="rayroute-bench-budget")
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"enable_access_log": False})
        t0 = time.monotonic()
        serve.run(build_app(app_args(router, replicas, strong.base_url, weak.base_url, target)), name="rayroute",
                  route_prefix="/", blocking=False)
        while True:
            try:
                r = httpx.get(url + "/health", timeout=5)
                st = serve.status().applications.get("rayroute")
                if r.status_code == 200 and st is not None and str(st.status).endswith("RUNNING"):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > start_timeout_s:
                raise TimeoutError(f"the app did not start within {start_timeout_s}s")
            time.sleep(1)
        boot_s = time.monotonic() - t0
        print(f"bench-budget: {replicas} ingress replica(s) up in {boot_s:.0f}s; replaying {len(stream)} requests "
              f"as {model!r}", flush=True)
        t1 = time.monotonic()
        records = asyncio.run(_send_all(url, stream, model, concurrency, max_tokens))
        wall = time.monotonic() - t1
        time.sleep(1.0)  # the last syncs
        per_replica: dict[str, int] = {}
        for _ in range(40):  # which ingress replicas decided how much (the proxy picks one per request)
            view = httpx.get(url + "/v1/budget", timeout=30).json()
            per_replica[view["replica"]] = view["replica_decisions"]
        budget_view = view
    finally:
        shutdown()
        strong.stop()
        weak.stop()
    key = next((k for k in budget_view.get("keys", {}) if k.endswith(f"share={target:g}")), None)
    return {"replicas": replicas, "model": model, "boot_s": round(boot_s, 1), "wall_s": round(wall, 1),
            "requests_per_s": round(len(stream) / wall, 1), "concurrency": concurrency,
            "state_decisions": budget_view["keys"][key]["decisions"] if key else None,
            "decisions_per_replica": sorted(per_replica.values(), reverse=True),
            "backend_calls": {"strong": strong.calls, "weak": weak.calls}, "records": records}


# --- the report ----------------------------------------------------------------------------------------------


def plot(results: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = results["target"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    n_phase = results["n_per_phase"]
    for run in (r for r in results["runs"] if r.get("run", 1) == 1):  # one line per replica count
        x = np.array([r["strong"] for r in run["records"]])
        w = window_shares(x, results["window"])
        ax.plot(np.arange(results["window"], len(x) + 1), w, label=f"controller, {run['replicas']} ingress replica(s)")
    p = np.array([r["p_strong"] for r in results["runs"][0]["records"]])
    st = (p >= results["static_alpha"]).astype(float)
    ax.plot(np.arange(results["window"], len(st) + 1), window_shares(st, results["window"]), "--", color="grey",
            label=f"static α={results['static_alpha']:g} (calibrated on AlpacaEval)")
    ax.axhspan(target - 0.03, target + 0.03, color="green", alpha=0.12, label="target ±3 points")
    for k, name in enumerate(PHASES):
        ax.axvline(k * n_phase, color="k", lw=0.5)
        ax.text(k * n_phase + 30, 0.95, name, fontsize=9, va="top")
    ax.set_ylim(0, 1)
    ax.set_xlabel("request (end of the 500-request window)")
    ax.set_ylabel("strong share in the last 500 requests")
    ax.set_title(f"bench-budget: target {target:.0%} strong, router {results['router']}")
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _compact(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's records as columns (the raw JSON beside the doc stays small)."""
    return {"p_strong": [round(r["p_strong"], 6) for r in records], "threshold": [round(r["threshold"], 6) for r in records],
            "strong": "".join("1" if r["strong"] else "0" for r in records), "t_s": [r["t"] for r in records]}


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values))}


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# bench-budget: {summary['target']:.0%} strong, router {summary['router']}", "",
             f"`{summary['command']}`; static α = {summary['static_alpha']:g} (calibrated on AlpacaEval); "
             f"{summary['n_per_phase']} requests per phase; windows of {summary['window']} after the first "
             f"{summary['skip']} of each phase.", "",
             "| ingress replicas | run | decisions per replica | overall share | worst window dev. (pts) alpaca / gsm8k / mmlu "
             "| all within ±3 | req/s | PGR controller | PGR static, same share |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in summary["runs"]:
        a = run["analysis"]
        dev = " / ".join(f"{a['phases'][n]['worst_window_deviation_points']:.1f}" for n in PHASES if n in a["phases"])
        q = a.get("quality", {})
        split = " / ".join(str(n) for n in run.get("decisions_per_replica", []))
        lines.append(f"| {run['replicas']} | {run['run']} | {split} | {a['overall_share']:.3f} | {dev} | "
                     f"{'yes' if a['every_window_within_tolerance'] else 'NO'} | {run['requests_per_s']} | "
                     f"{q.get('controller_pgr', float('nan')):.3f} | {q.get('static_equal_share_pgr', float('nan')):.3f} |")
    lines += ["", "| phase | static α share | drift (pts) |", "| --- | --- | --- |"]
    first = summary["runs"][0]["analysis"]["phases"]
    for n in PHASES:
        if n in first:
            lines.append(f"| {n} | {first[n]['static_share']:.3f} | {first[n]['static_drift_points']:+.1f} |")
    dp = summary["decision_path"]
    lines += ["", f"Decision path in process: static {dp['static_p50_ms']:.4f} ms, live target {dp['live_p50_ms']:.4f} ms "
              f"p50: **+{dp['added_p50_ms']:.4f} ms**; the shared state spends {dp['state_sync_per_decision_ms']:.4f} ms "
              "per decision it takes in.", ""]
    for r, agg in summary["by_replicas"].items():
        lines.append(f"- {r} replica(s), {agg['runs']} run(s): worst window deviation median {agg['worst_points']['median']:.1f} "
                     f"pts (range {agg['worst_points']['min']:.1f}–{agg['worst_points']['max']:.1f}); APGR (in-process replay "
                     f"on the served scores) controller {agg['controller_apgr']['median']:.3f} vs static "
                     f"{agg['static_apgr']['median']:.3f}")
    return "\n".join(lines) + "\n"


def bench_budget(out_dir: str | Path = REPO_ROOT / "results" / "budget", router: str = "linear_static",
                 target: float = 0.3, replicas: tuple[int, ...] = (1, 2), n_per_phase: int = 2000,
                 concurrency: int = 8, seed: int = 0, decision_n: int = 20000, runs: int = 1,
                 command: str | None = None) -> dict[str, Any]:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = replay_stream(n_per_phase, seed)
    alpha = static_alpha(router, target)
    print(f"bench-budget: static α for {target:.0%} on AlpacaEval = {alpha:g}", flush=True)
    results: dict[str, Any] = {"command": command or f"rayroute bench-budget --replicas {','.join(map(str, replicas))} "
                                          f"--runs {runs} --out {out_dir}",
                               "router": router, "target": target, "n_per_phase": n_per_phase, "phases": list(PHASES),
                               "seed": seed, "static_alpha": alpha, "window": 500, "skip": 200, "cpus": os.cpu_count(),
                               "concurrency": concurrency, "decision_path": decision_path_bench(decision_n), "runs": []}
    dp = results["decision_path"]
    print(f"decision path: +{dp['added_p50_ms']:.4f} ms p50 in process (static {dp['static_p50_ms']:.4f} ms, "
          f"live {dp['live_p50_ms']:.4f} ms); shared state {dp['state_sync_per_decision_ms']:.4f} ms per decision",
          flush=True)
    for k in range(runs):
        for r in replicas:
            run = served_run(stream, router, r, target, concurrency)
            run["run"] = k + 1
            run["analysis"] = analyse(run["records"], stream, target, alpha)
            p = np.array([x["p_strong"] for x in run["records"]])
            run["apgr"] = simulate_apgr(p, stream)
            results["runs"].append(run)
            a = run["analysis"]
            print(f"{r} replica(s), run {k + 1}/{runs}: {run['wall_s']}s ({run['requests_per_s']} req/s); decisions per "
                  f"replica {run['decisions_per_replica']}, in the shared state {run['state_decisions']}; overall share "
                  f"{a['overall_share']:.3f}; every window within ±3 points: {a['every_window_within_tolerance']}", flush=True)
            for name, ph in a["phases"].items():
                print(f"  {name:12s} static {ph['static_share']:.3f} ({ph['static_drift_points']:+.1f} pts)  controller "
                      f"{ph['controller_share']:.3f}, windows {ph['window_share_min']:.3f}..{ph['window_share_max']:.3f} "
                      f"(worst {ph['worst_window_deviation_points']:.1f} pts)", flush=True)
            raw = {**{x: v for x, v in run.items() if x != "records"}, "records": _compact(run["records"])}
            (out / f"bench-budget-r{r}-run{k + 1}.json").write_text(json.dumps(raw) + "\n")  # raw, with every decision
    summary = {k: v for k, v in results.items() if k != "runs"}
    summary["runs"] = [{k: v for k, v in run.items() if k != "records"} for run in results["runs"]]
    summary["by_replicas"] = {}
    for r in replicas:
        rs = [run for run in results["runs"] if run["replicas"] == r]
        worst = [max(ph["worst_window_deviation_points"] for ph in run["analysis"]["phases"].values()) for run in rs]
        summary["by_replicas"][str(r)] = {
            "runs": len(rs), "worst_points": _spread(worst),
            "all_within_tolerance": all(run["analysis"]["every_window_within_tolerance"] for run in rs),
            "overall_share": _spread([run["analysis"]["overall_share"] for run in rs]),
            "requests_per_s": _spread([run["requests_per_s"] for run in rs]),
            "controller_pgr": _spread([run["analysis"]["quality"]["controller_pgr"] for run in rs]),
            "static_equal_share_pgr": _spread([run["analysis"]["quality"]["static_equal_share_pgr"] for run in rs]),
            "controller_apgr": _spread([run["apgr"]["controller_apgr"] for run in rs]),
            "static_apgr": _spread([run["apgr"]["static_apgr"] for run in rs]),
        }
    (out / "bench-budget.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "bench-budget.md").write_text(markdown(summary))
    plot(results, out / "share-over-time.png")
    print(markdown(summary), flush=True)
    return summary
