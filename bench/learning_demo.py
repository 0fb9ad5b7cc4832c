"""The learning demonstration (issue 16, docs/learning.md): the server learns to route from its
own traffic, end to end, on this machine.

    rayroute demo-learning --noise 0.0 --out results/learning/noise-0
    rayroute demo-learning --noise 0.2 --out results/learning/noise-20

- The real app on a local Ray cluster, deployed from a Serve config (Serve's declarative API, as
  ``serve run serve_config.yaml``), a ``linear_static`` router (the kind promotion trains) placed
  in the ingress, label collection on (sample rate 1, so every routed answer is judged).
- Strong and weak backends: OpenAI-compatible fakes that answer each benchmark question right or
  wrong as gpt-4-1106-preview and Mixtral-8x7B did (``bench.fake_backends``, golden outcomes from
  ``routers.data.golden``). The judge: a fake speaking the real pairwise protocol, right by the
  golden outcomes except for a ``noise`` share of flipped verdicts.
- Traffic: the benchmark questions in a seeded random order, sent with the official openai SDK by
  ``concurrency`` client threads, MMLU first, then GSM8K; it never pauses.
- At N labels of the current benchmark (``sizes``): ``deployments.promotion.run_promotion`` (gate:
  cross-fitted APGR on the labels the serving router never saw, paired bootstrap; a winner is
  hot-reloaded through the ingress's user_config while traffic flows), then the live router's APGR
  on ``eval_questions`` questions of the benchmark that are never sent as traffic (scored through
  the server: ``POST /v1/route``).
- The start and the baseline: that recipe (``rayroute train linear``) trained on the golden
  sources *other than* MMLU and GSM8K. The committed checkpoint was trained on these benchmarks'
  own outcomes, so scoring it on them would be in-sample; its (in-sample) figure is reported
  beside, labelled so.

Output: ``results.json`` (every checkpoint, gate comparison, request counts), ``results.md`` and
``learning-curve.png``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

APP = "rayroute"
ALIAS = "linear_static"
KEY_ENV = "RAYROUTE_DEMO_KEY"
GENERAL = ("mt_bench", "arc_challenge", "mbpp")
PAPER = {"mmlu": 0.603, "gsm8k": 0.622}  # the paper's best routers' APGR (targets with 20 % noise)
TARGETS = {"mmlu": (250, 0.60), "gsm8k": (500, 0.65)}  # (N, APGR) with 0 % noise


@dataclass
class DemoArgs:
    out_dir: str
    sizes: tuple[int, ...] = (100, 250, 500, 1000, 2000)
    noise: float = 0.0
    benchmarks: tuple[str, ...] = ("mmlu", "gsm8k")
    eval_questions: int = 1000
    concurrency: int = 4
    load_rps: float = 5.0  # traffic during each gate, promotion and evaluation (requests/s)
    seed: int = 0
    folds: int = 5
    data_dir: str | None = None
    work_dir: str | None = None


@dataclass
class Traffic:
    """The client side: ``concurrency`` threads sending the queued questions as routed chat requests
    with the openai SDK; every outcome counted. Up to ``allowed`` questions at full speed; while
    ``rate_rps`` is set (during a promotion and its evaluation), a steady trickle instead, so that
    the swap always happens under load."""

    url: str
    concurrency: int
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    idx: int = 0
    allowed: int = 0
    rate_rps: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def feed(self, prompts: list[str]) -> None:
        with self._lock:
            self.prompts, self.idx, self.allowed = list(prompts), 0, 0

    def _next(self) -> str | None:
        with self._lock:
            if self.idx >= len(self.prompts) or (self.rate_rps is None and self.idx >= self.allowed):
                return None
            self.idx += 1
            return self.prompts[self.idx - 1]

    def _run(self) -> None:
        from openai import OpenAI

        client = OpenAI(base_url=self.url + "/v1", api_key="unused", timeout=60, max_retries=0)
        while not self._stop.is_set():
            q = self._next()
            if q is None:
                time.sleep(0.05)
                continue
            try:
                client.chat.completions.create(model=f"router-{ALIAS}", messages=[{"role": "user", "content": q}],
                                               max_tokens=16)
                with self._lock:
                    self.ok += 1
            except Exception as exc:  # counted: the demonstration's claim is that there are none
                with self._lock:
                    self.failed += 1
                    self.failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            rate = self.rate_rps
            if rate:
                time.sleep(self.concurrency / rate)

    def start(self) -> "Traffic":
        for _ in range(self.concurrency):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(70)


@contextlib.contextmanager
def running_app(app_args: dict[str, Any], env: dict[str, str] | None = None, num_cpus: int = 4,
                wait_s: float = 300) -> Iterator[tuple[str, dict[str, Any]]]:
    """A local Ray cluster with the app deployed from a Serve config: (base URL, the config).
    Ray and Serve are shut down on exit, whatever happened."""
    import ray

    from bench.fake_openai import free_port
    from bench.local_ray import ray_env, shutdown
    from deployments.promotion import apply_config

    port = free_port()
    config = {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": port},
              "applications": [{"name": APP, "route_prefix": "/", "import_path": "deployments.app:build_app",
                                "args": app_args}]}
    with ray_env(env):
        try:
            for attempt in range(3):  # Ray gives its raylet 30 s to register; a busy machine can need more
                try:
                    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                             namespace="rayroute-learning")
                    break
                except Exception as exc:
                    if attempt == 2 or "timed out during startup" not in str(exc):
                        raise
                    log.warning("Ray did not start (%s); retrying", exc)
                    ray.shutdown()
            apply_config(config, wait_s=wait_s)
            yield f"http://127.0.0.1:{port}", config
        finally:
            shutdown()


def demo_app_args(start_checkpoint: str, strong_url: str, weak_url: str, judge_url: str, store: str) -> dict[str, Any]:
    return {
        "routers": [{"alias": ALIAS, "source": start_checkpoint, "placement": "ingress", "default_threshold": 0.5}],
        "weak_model": {"model": "fake-weak", "api_base_url": weak_url, "api_key_env": KEY_ENV,
                       "served_model_name": "fake-weak"},
        "strong_model": {"base_url": strong_url, "model": "fake-strong", "api_key_env": KEY_ENV,
                         "request_timeout_s": 20, "max_retries": 2, "cooldown_failures": 0},
        "ingress": {"api_keys_env": None, "backend_timeout_s": 60, "router_timeout_s": 30},
        "learning": {"collect": True, "feedback": True, "sample_rate": 1.0, "budget_usd_per_hour": 10000.0,
                     "max_pending": 256, "store": store,
                     "judge": {"base_url": judge_url, "model": "fake-judge", "api_key_env": KEY_ENV}},
        "deployments": {
            "ingress": {"num_replicas": 1, "max_ongoing_requests": 512, "ray_actor_options": {"num_cpus": 0.5}},
            "strong_model": {"num_replicas": 1, "max_ongoing_requests": 512, "ray_actor_options": {"num_cpus": 0.1}},
            "weak_model": {"num_replicas": 1, "max_ongoing_requests": 512, "ray_actor_options": {"num_cpus": 0.1}},
        },
    }


def live_apgr(url: str, prompts: list[str], strong: np.ndarray, weak: np.ndarray, workers: int = 8) -> float:
    """APGR of the router the server runs now, scored through ``POST /v1/route``."""
    import concurrent.futures as cf

    import httpx

    from routers.evaluation import metrics as m

    def score(chunk: list[str]) -> list[float]:
        with httpx.Client(base_url=url, timeout=60) as c:
            out = []
            for q in chunk:
                r = c.post("/v1/route", json={"model": f"router-{ALIAS}", "prompt": q})
                r.raise_for_status()
                out.append(float(r.json()["p_strong"]))
            return out

    chunks = [prompts[i::workers] for i in range(workers)]
    with cf.ThreadPoolExecutor(workers) as ex:
        parts = list(ex.map(score, chunks))
    scores = np.empty(len(prompts))
    for i, part in enumerate(parts):
        scores[i::workers] = part
    return float(m.apgr(scores, strong, weak))


def _label_counts(store: str, by_bench: dict[str, set[str]]) -> dict[str, int]:
    from routers.learning.store import read_labels

    if not Path(store).is_dir():
        return {b: 0 for b in by_bench}
    df = read_labels(store)
    prompts = df["prompt"].tolist()
    return {b: sum(p in qs for p in prompts) for b, qs in by_bench.items()}


def _stats(url: str) -> dict[str, Any]:
    import httpx

    return httpx.get(url + "/v1/stats", timeout=30).json()


def _wait_version(url: str, version: str, timeout_s: float = 120) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if _stats(url)["router_versions"].get(ALIAS) == version:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise TimeoutError(f"the server did not switch to {version} in {timeout_s}s")


def run_demo(a: DemoArgs) -> dict[str, Any]:
    from bench.fake_backends import GoldenModelServer, JudgeServer
    from deployments.promotion import _train_with, run_promotion
    from routers.data.golden import load_golden
    from routers.learning.store import read_labels
    from routers.embeddings import embedder_from_spec
    from routers.evaluation import metrics as m
    from routers.registry import load_router

    t_start = time.monotonic()
    for noisy in ("httpx", "httpx2", "openai"):  # one line per request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import tempfile

    # the label store (prompts) and checkpoints live outside the output folder: nothing of it is committed
    work = Path(a.work_dir) if a.work_dir else Path(tempfile.mkdtemp(prefix="rayroute-learning-"))
    work.mkdir(parents=True, exist_ok=True)
    store = str(work / "labels")
    rng = np.random.default_rng(a.seed)
    benches = {b: load_golden(b, a.data_dir) for b in a.benchmarks}
    general = [load_golden(s, a.data_dir) for s in GENERAL]
    embedder = embedder_from_spec("static")

    # the start: the served recipe on the general golden sources only
    start = work / "start-general-only"
    _train_without_labels(start, general, embedder)
    shipped = load_router(ALIAS)

    plan: dict[str, dict[str, Any]] = {}
    strong_ok: dict[str, bool] = {}
    weak_ok: dict[str, bool] = {}
    for name, src in benches.items():
        perm = rng.permutation(len(src))
        n_eval = min(a.eval_questions, len(src) // 3)
        ev, traffic = perm[:n_eval], perm[n_eval:]
        sizes = [n for n in a.sizes if n <= len(traffic)]
        plan[name] = {"eval": ev, "traffic": [src.prompts[i] for i in traffic], "sizes": sizes,
                      "eval_prompts": [src.prompts[i] for i in ev]}
        for p, s, w in zip(src.prompts, src.strong, src.weak):
            strong_ok[p], weak_ok[p] = bool(s > 0.5), bool(w > 0.5)
    by_bench = {b: set(plan[b]["traffic"]) for b in benches}

    result: dict[str, Any] = {"command": f"rayroute demo-learning --noise {a.noise} --sizes "
                                         f"{','.join(map(str, a.sizes))} --benchmarks {','.join(a.benchmarks)} "
                                         f"--eval-questions {a.eval_questions} --seed {a.seed}",
                              "args": {k: v for k, v in asdict(a).items() if k not in ("out_dir", "work_dir")},
                              "general_sources": list(GENERAL), "benchmarks": {}, "checkpoints": []}
    with GoldenModelServer("fake-strong", strong_ok) as strong, GoldenModelServer("fake-weak", weak_ok) as weak, \
            JudgeServer(noise=a.noise, seed=a.seed) as judge:
        app_args = demo_app_args(str(start), strong.base_url, weak.base_url, judge.base_url, store)
        with running_app(app_args, env={KEY_ENV: "demo-" + secrets.token_hex(4)}) as (url, config):
            traffic = Traffic(url, a.concurrency).start()
            try:
                for name in a.benchmarks:
                    p = plan[name]
                    src = benches[name]
                    ev_strong, ev_weak = src.strong[p["eval"]], src.weak[p["eval"]]
                    base = live_apgr(url, p["eval_prompts"], ev_strong, ev_weak)
                    shipped_apgr = float(m.apgr(shipped.score(p["eval_prompts"]), ev_strong, ev_weak))
                    result["benchmarks"][name] = {
                        "eval_questions": len(p["eval"]), "traffic_questions": len(p["traffic"]),
                        "baseline_live_apgr": base, "baseline_version": _stats(url)["router_versions"].get(ALIAS),
                        "shipped_checkpoint_apgr_in_sample": shipped_apgr}
                    log.info("%s: baseline live APGR %.3f (shipped checkpoint, in-sample: %.3f)", name, base, shipped_apgr)
                    print(f"[{name}] baseline live APGR {base:.3f}", flush=True)
                    traffic.feed(p["traffic"])
                    for n in p["sizes"]:
                        t0 = time.monotonic()
                        have = _label_counts(store, {name: by_bench[name]})[name]
                        with traffic._lock:  # full speed until n of this benchmark's questions are labelled
                            traffic.allowed = traffic.idx + max(0, n - have)
                            traffic.rate_rps = None
                        while _label_counts(store, {name: by_bench[name]})[name] < n:
                            if time.monotonic() - t0 > 900:
                                raise TimeoutError(f"{name}: fewer than {n} labels after 900 s")
                            time.sleep(0.5)
                        traffic.rate_rps = a.load_rps  # the promotion happens under a steady load
                        at_gate = _label_counts(store, by_bench)
                        before_fail = traffic.failed
                        res = run_promotion(store, ALIAS, config, app_name=APP, sources=GENERAL, k=a.folds,
                                            seed=a.seed, general=general, embedder=embedder)
                        swap_s = None
                        if res.get("applied"):
                            config = res["config"]
                            swap_s = _wait_version(url, Path(res["candidate"]).name)
                        apgr = live_apgr(url, p["eval_prompts"], ev_strong, ev_weak)
                        # what promoting every candidate would give (the gate's conservatism, measured):
                        # the same recipe on the same labels, scored offline on the same unseen questions
                        cand_dir = work / f"shadow-{name}-{n}"
                        _train_with(cand_dir, general, read_labels(store), embedder, 1.0, a.seed)
                        cand_apgr = float(m.apgr(load_router(cand_dir).score(p["eval_prompts"]), ev_strong, ev_weak))
                        row = {"benchmark": name, "n": n, "labels_of_benchmark": at_gate[name],
                               "labels_total": int(sum(at_gate.values())), "labels_gate_read": res["labels"],
                               "gate": {k: v for k, v in res.items() if k not in ("config",)},
                               "promoted": bool(res.get("applied")), "swap_seconds": swap_s,
                               "live_apgr": apgr, "candidate_apgr_unseen": cand_apgr, "serving": _stats(url)["router_versions"].get(ALIAS),
                               "failed_requests_during": traffic.failed - before_fail,
                               "requests_ok_so_far": traffic.ok, "elapsed_s": round(time.monotonic() - t_start, 1)}
                        result["checkpoints"].append(row)
                        print(f"[{name}] N={n} ({at_gate[name]} labels): gate "
                              f"{'PROMOTED' if row['promoted'] else 'kept'} "
                              f"(diff {res.get('diff', float('nan')):+.3f} [{res.get('diff_lo', float('nan')):+.3f}, "
                              f"{res.get('diff_hi', float('nan')):+.3f}]); live APGR {apgr:.3f} "
                              f"(candidate {cand_apgr:.3f}); "
                              f"failed requests {traffic.failed}", flush=True)
            finally:
                traffic.stop()
                stats = _stats(url)
            result["requests"] = {"ok": traffic.ok, "failed": traffic.failed, "failures": traffic.failures[:20]}
            result["server_stats"] = {k: stats[k] for k in ("learning", "router_versions", "router_reloads")}
            result["fake_calls"] = {"strong": strong.calls, "weak": weak.calls, "judge": judge.calls}
    result["seconds"] = round(time.monotonic() - t_start, 1)
    result["work_dir"] = str(work)
    for b, v in no_loop(a).items():
        result["benchmarks"][b]["no_loop_apgr"] = v
    (out / "results.json").write_text(json.dumps(result, indent=2, default=_json))
    (out / "results.md").write_text(report(result))
    plot(result, out / "learning-curve.png")
    return result


def no_loop(a: DemoArgs) -> dict[str, float]:
    """The baseline row: the run's starting router (the served recipe on the general sources) on each
    benchmark's evaluation questions, as it would score them had the loop never run. The same
    deterministic split and router as ``run_demo`` (offline scoring is the function the server runs)."""
    import tempfile

    from routers.data.golden import load_golden
    from routers.embeddings import embedder_from_spec
    from routers.evaluation import metrics as m
    from routers.registry import load_router

    rng = np.random.default_rng(a.seed)
    general = [load_golden(s, a.data_dir) for s in GENERAL]
    embedder = embedder_from_spec("static")
    with tempfile.TemporaryDirectory() as tmp:
        _train_without_labels(Path(tmp) / "start", general, embedder)
        start = load_router(Path(tmp) / "start")
        out = {}
        for b in a.benchmarks:
            src = load_golden(b, a.data_dir)
            perm = rng.permutation(len(src))
            ev = perm[:min(a.eval_questions, len(src) // 3)]
            out[b] = float(m.apgr(start.score([src.prompts[i] for i in ev]), src.strong[ev], src.weak[ev]))
    return out


def add_no_loop(a: DemoArgs) -> dict[str, Any]:
    """Add the no-loop row to the results of an earlier run in ``a.out_dir`` (run before that row
    existed), and re-render its report and plot."""
    out = Path(a.out_dir)
    r = json.loads((out / "results.json").read_text())
    for b, v in no_loop(a).items():
        r["benchmarks"][b]["no_loop_apgr"] = v
    r["no_loop_added_by"] = "rayroute demo-learning --no-loop-only (same arguments)"
    (out / "results.json").write_text(json.dumps(r, indent=2, default=_json))
    (out / "results.md").write_text(report(r))
    plot(r, out / "learning-curve.png")
    return r


def _train_without_labels(out: Path, general, embedder) -> None:
    from routers.data.golden import source_weights
    from routers.models.linear import fit_linear

    prompts = [p for s in general for p in s.prompts]
    sw = source_weights({s.name: len(s) for s in general})
    w = np.concatenate([np.full(len(s), sw[s.name]) for s in general])
    y = np.concatenate([s.targets for s in general])
    fit_linear(prompts, embedder.embed(prompts), y, w, embedder=embedder,
               info={"sources": [s.name for s in general], "source_weights": sw}).save(out)


def _json(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def report(r: dict[str, Any]) -> str:
    lines = [f"# Learning from traffic: `{r['command']}`", "",
             f"Judge noise {r['args']['noise']:.0%}; {r['requests']['ok']} chat requests answered, "
             f"**{r['requests']['failed']} failed**; {r['seconds']:.0f} s.", "",
             "| benchmark | N (labels of it) | gate | gate: APGR diff on held-out labels [90 %: lower end = one-sided 95 % bound] | live APGR "
             "(unseen questions) | the candidate's APGR had it been promoted |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, b in r["benchmarks"].items():
        if "no_loop_apgr" in b:
            lines.append(f"| {name} | no loop (baseline: the starting router only) | — | — | {b['no_loop_apgr']:.3f} | — |")
        lines.append(f"| {name} | 0 (this benchmark's traffic starts; serving {b['baseline_version']}) | — | — | "
                     f"{b['baseline_live_apgr']:.3f} | — |")
        for c in r["checkpoints"]:
            if c["benchmark"] != name:
                continue
            g = c["gate"]
            diff = (f"{g['diff']:+.3f} [{g['diff_lo']:+.3f}, {g['diff_hi']:+.3f}]" if "diff" in g else g["reason"])
            lines.append(f"| {name} | {c['n']} ({c['labels_of_benchmark']}) | "
                         f"{'promoted' if c['promoted'] else 'kept'} | {diff} | {c['live_apgr']:.3f} | "
                         f"{c['candidate_apgr_unseen']:.3f} |")
    lines += ["", "The committed `linear_static` checkpoint on the same evaluation questions (trained on "
              "them, so in-sample, not comparable): "
              + ", ".join(f"{n} {b['shipped_checkpoint_apgr_in_sample']:.3f}" for n, b in r["benchmarks"].items()), ""]
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(r["benchmarks"]), figsize=(5 * len(r["benchmarks"]), 3.6), squeeze=False)
    for ax, (name, b) in zip(axes[0], r["benchmarks"].items()):
        rows = [c for c in r["checkpoints"] if c["benchmark"] == name]
        xs = [c["labels_of_benchmark"] for c in rows]
        ax.plot([0, *xs], [b["baseline_live_apgr"], *[c["live_apgr"] for c in rows]], "o-", label="live router (gated)")
        ax.plot(xs, [c["candidate_apgr_unseen"] for c in rows], "s--", alpha=0.6, label="candidate (ungated)")
        for c in rows:
            if c["promoted"]:
                ax.plot(c["labels_of_benchmark"], c["live_apgr"], "*", color="tab:green", ms=12)
        ax.axhline(b.get("no_loop_apgr", b["baseline_live_apgr"]), ls=":", color="grey", label="no loop (baseline)")
        ax.set_xlim(left=0)
        ax.axhline(0.5, ls="--", color="lightgrey", label="random")
        if name in PAPER:
            ax.axhline(PAPER[name], ls="-.", color="tab:red", label=f"paper best {PAPER[name]}")
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlabel(f"labels collected from {name} traffic")
        ax.set_ylabel("APGR on unseen questions")
        ax.set_title(f"{name}, judge noise {r['args']['noise']:.0%}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
