"""``rayroute loadtest``: drive a running ingress with real prompts and report latency/throughput.

Built on locust's library API (closed-loop users at a set concurrency, or a set request rate),
bounded by time and/or request count; it stops by itself and sends traffic only to a loopback
address. Modes put several *targets* in ONE run, interleaved request by request, so comparisons
are differences measured side by side on the same machine at the same moment:

- ``route``: ``POST /v1/route`` (the router's cost through Serve);
- ``route-vs-noop``: ``/v1/route`` vs. the no-op app of the same shape (ingress -> one deployment
  returning a constant, mounted at ``--noop-prefix``);
- ``chat``: chat completions through the router;
- ``chat-vs-direct``: chat through the router vs. chat sent straight to the weak model
  (``model`` = the weak model's name, which the ingress serves without routing).

Targets alternate in time slices (``--slice-s``, default 5 s: all users on one target, then the
next), so each target's throughput is measured alone yet the slices interleave over the whole run;
``--slice-s 0`` interleaves request by request instead (closed-loop users then couple the targets'
throughput, so only latencies compare).

Prompts are sent in order, each once per pass over the list; ``--repeat-share R`` makes a share R
of requests resend a prompt sent earlier in the run (picked uniformly, seeded), which is how a
router's score cache (``score_cache_entries``) is measured under traffic with repeats.

Outputs: a JSON summary (per target: requests, errors, throughput, p50/p95/p99/mean latency,
routed-model split; plus the comparison) and a PNG (latency distributions, throughput over time).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

MODES = ("route", "route-vs-noop", "chat", "chat-vs-direct")


def ingress_key(env_name: str | None = "RAYROUTE_API_KEYS") -> str | None:
    """A key the ingress accepts: the first of the comma-separated keys in ``$env_name``, the same
    variable the ingress reads (``ingress.api_keys_env``); None when it holds none."""
    from deployments.http import load_api_keys

    keys = load_api_keys(env_name)
    return keys[0].decode() if keys else None


class LoadTestError(ValueError):
    """Bad load-test arguments (non-loopback target, no bound, unknown mode)."""


class PromptStream:
    """The prompts a run sends, in order. With ``repeat_share`` > 0, each request resends a prompt
    sent earlier in the run with that probability (uniform over those sent, seeded), else the next
    fresh one; the first request is always fresh."""

    def __init__(self, prompts: Sequence[str], repeat_share: float = 0.0, seed: int = 0) -> None:
        if not prompts:
            raise LoadTestError("no prompts to send")
        if not 0.0 <= repeat_share < 1.0:
            raise LoadTestError(f"repeat_share must be in [0, 1), got {repeat_share!r}")
        self.prompts = list(prompts)
        self.repeat_share = float(repeat_share)
        self._rng = np.random.default_rng(seed)
        self._fresh = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            if self._fresh and self.repeat_share and self._rng.random() < self.repeat_share:
                return self.prompts[int(self._rng.integers(min(self._fresh, len(self.prompts))))]
            prompt = self.prompts[self._fresh % len(self.prompts)]
            self._fresh += 1
            return prompt


def check_slices(duration_s: float | None, slice_s: float | None, n_targets: int) -> None:
    """A time-sliced comparison must give every target at least one slice, or its throughput is 0."""
    if slice_s and n_targets > 1 and duration_s and duration_s < slice_s * n_targets:
        raise LoadTestError(f"duration_s={duration_s:g} gives {n_targets} targets less than one {slice_s:g} s slice "
                            f"each: run for at least {slice_s * n_targets:g} s or shorten --slice-s")


def check_loopback(url: str) -> str:
    """Return the host of ``url`` if it is a loopback address; refuse anything else."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LoadTestError(f"--url must look like http://127.0.0.1:8000, got {url!r}")
    host = parsed.hostname
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise LoadTestError(f"cannot resolve {host!r}: {exc}") from None
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise LoadTestError(
            f"refusing to load-test {host!r} ({', '.join(sorted(addrs))}): only loopback addresses "
            "(127.0.0.0/8, localhost, ::1) may be targeted"
        )
    return host


@dataclass
class Target:
    name: str
    path: str
    body: Callable[[str], dict]


def make_targets(mode: str, model: str, direct_model: str | None, noop_prefix: str, max_tokens: int) -> list[Target]:
    def route_body(m):
        return lambda prompt: {"model": m, "messages": [{"role": "user", "content": prompt}]}

    def chat_body(m):
        return lambda prompt: {
            "model": m, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "temperature": 0.0,
        }

    if mode == "route":
        return [Target("route", "/v1/route", route_body(model))]
    if mode == "route-vs-noop":
        return [Target("route", "/v1/route", route_body(model)),
                Target("noop", noop_prefix.rstrip("/") + "/v1/route", route_body(model))]
    if mode == "chat":
        return [Target("chat-routed", "/v1/chat/completions", chat_body(model))]
    if mode == "chat-vs-direct":
        if not direct_model:
            raise LoadTestError("mode chat-vs-direct needs --direct-model (the weak model's served name)")
        return [Target("chat-routed", "/v1/chat/completions", chat_body(model)),
                Target("chat-direct", "/v1/chat/completions", chat_body(direct_model))]
    raise LoadTestError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


@dataclass
class Sample:
    t_s: float          # start time, seconds since the run began
    target: str
    latency_ms: float
    status: int         # HTTP status, 0 for a transport error
    routed_model: str | None
    error: str | None = None


@dataclass
class LoadResult:
    url: str
    mode: str
    concurrency: int
    duration_s: float
    samples: list[Sample] = field(default_factory=list)
    slice_s: float | None = None
    n_targets: int = 1
    target_names: list[str] = field(default_factory=list)
    repeat_share: float = 0.0

    def target_time_s(self, index: int) -> float:
        """Seconds of the run during which target ``index`` was the one being sent."""
        if not self.slice_s or self.n_targets == 1:
            return self.duration_s
        total, k = 0.0, 0
        while k * self.slice_s < self.duration_s:
            if k % self.n_targets == index:
                total += min(self.slice_s, self.duration_s - k * self.slice_s)
            k += 1
        return total

    def per_target(self) -> dict[str, dict]:
        out = {}
        seen = set(s.target for s in self.samples)
        names = [n for n in self.target_names if n in seen] or list(dict.fromkeys(s.target for s in self.samples))
        for name in names:  # in the order the targets were given: comparisons are first vs second
            ss = [s for s in self.samples if s.target == name]
            ok = [s for s in ss if s.status == 200]
            lat = np.array([s.latency_ms for s in ok]) if ok else np.array([np.nan])
            split: dict[str, int] = {}
            for s in ok:
                split[s.routed_model or "?"] = split.get(s.routed_model or "?", 0) + 1
            errors: dict[str, int] = {}
            for s in ss:
                if s.status != 200:
                    key = str(s.status) if s.status else (s.error or "transport")
                    errors[key] = errors.get(key, 0) + 1
            out[name] = {
                "requests": len(ss),
                "ok": len(ok),
                "errors": len(ss) - len(ok),
                "errors_by_kind": errors,
                "throughput_rps": len(ok) / t if (t := self.target_time_s(self._index(name))) else 0.0,
                "latency_ms": {
                    "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                    "p99": float(np.percentile(lat, 99)), "mean": float(np.mean(lat)),
                },
                "routed_model_split": split,
            }
        return out

    def _index(self, name: str) -> int:
        return self.target_names.index(name) if name in self.target_names else 0

    def summary(self) -> dict:
        targets = self.per_target()
        out = {"url": self.url, "mode": self.mode, "concurrency": self.concurrency,
               "duration_s": round(self.duration_s, 3), "slice_s": self.slice_s,
               "repeat_share": self.repeat_share, "targets": targets}
        names = list(targets)
        if len(names) == 2:
            a, b = targets[names[0]], targets[names[1]]
            out["comparison"] = {
                "a": names[0], "b": names[1],
                "p50_difference_ms": a["latency_ms"]["p50"] - b["latency_ms"]["p50"],
                "p99_ratio": a["latency_ms"]["p99"] / b["latency_ms"]["p99"] if b["latency_ms"]["p99"] else None,
                "throughput_ratio": a["throughput_rps"] / b["throughput_rps"] if b["throughput_rps"] else None,
            }
        return out


def run_load(
    url: str,
    targets: Sequence[Target],
    prompts: Sequence[str],
    concurrency: int = 8,
    duration_s: float | None = 30.0,
    max_requests: int | None = None,
    rate_per_s: float | None = None,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    warmup_requests: int = 0,
    slice_s: float | None = 5.0,
    repeat_share: float = 0.0,
) -> LoadResult:
    """Run one bounded load test; returns every sample. Blocks until done."""
    check_loopback(url)
    if concurrency < 1:
        raise LoadTestError(f"concurrency must be >= 1, got {concurrency}")
    if not duration_s and not max_requests:
        raise LoadTestError("give a bound: duration_s and/or max_requests")
    check_slices(duration_s, slice_s, len(targets))
    stream = PromptStream(prompts, repeat_share)
    # locust monkey-patches the standard library with gevent on import: import it only here.
    import gevent
    from locust import FastHttpUser, constant, constant_throughput, task
    from locust.env import Environment

    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    result = LoadResult(url=url, mode="", concurrency=concurrency, duration_s=0.0,
                        slice_s=slice_s or None, n_targets=len(targets),
                        target_names=[t.name for t in targets], repeat_share=repeat_share)
    counter = itertools.count()
    lock = threading.Lock()
    state = {"t0": None, "stop": False}
    n_targets = len(targets)

    class LoadUser(FastHttpUser):
        host = url.rstrip("/")
        wait_time = constant_throughput(rate_per_s / concurrency) if rate_per_s else constant(0)
        network_timeout = timeout_s
        connection_timeout = timeout_s

        @task
        def one(self):
            if state["stop"]:
                self.environment.runner.quit()
                return
            i = next(counter)
            if slice_s and state["t0"] is not None:  # time slices: everyone on one target at a time
                k = int((time.perf_counter() - state["t0"]) / slice_s)
                target = targets[k % n_targets]
            else:  # request by request (and during warm-up)
                target = targets[i % n_targets]
            prompt = stream.next()
            body = json.dumps(target.body(prompt))
            t_start = time.perf_counter()
            status, routed, err = 0, None, None
            try:
                with self.client.post(target.path, data=body, headers=headers, name=target.name,
                                      catch_response=True) as resp:
                    status = resp.status_code or 0
                    routed = resp.headers.get("x-routed-model") if resp.headers else None
                    if status == 200 and routed is None and target.path.endswith("/v1/route"):
                        try:  # /v1/route answers the decision in its body
                            routed = json.loads(resp.text or "{}").get("routed_model")
                        except ValueError:
                            routed = None
                    if status != 200:
                        err = (resp.text or "")[:200]
                        resp.failure(f"HTTP {status}")
                    else:
                        resp.success()
            except Exception as exc:  # transport errors are samples, not crashes
                err = type(exc).__name__
            latency_ms = (time.perf_counter() - t_start) * 1000.0
            if i < warmup_requests:
                return
            with lock:
                if state["t0"] is None:
                    state["t0"] = t_start  # the measured run starts with the first counted request
                result.samples.append(Sample(t_start - state["t0"], target.name, latency_ms, status, routed, err))
                if max_requests and len(result.samples) >= max_requests:
                    state["stop"] = True

    env = Environment(user_classes=[LoadUser])
    runner = env.create_local_runner()
    t0 = time.perf_counter()
    runner.start(concurrency, spawn_rate=concurrency)

    def stopper():
        while True:
            gevent.sleep(0.05)
            elapsed = time.perf_counter() - t0
            if state["stop"] or (duration_s and elapsed >= duration_s):
                state["stop"] = True
                runner.quit()
                return

    gevent.spawn(stopper)
    runner.greenlet.join(timeout=(duration_s or 0) + timeout_s + 30)
    if state["t0"] is not None and result.samples:
        result.duration_s = max(s.t_s + s.latency_ms / 1000 for s in result.samples)
    else:
        result.duration_s = time.perf_counter() - t0
    return result


def plot(result: LoadResult, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(dict.fromkeys(s.target for s in result.samples))
    for name in names:
        lat = [s.latency_ms for s in result.samples if s.target == name and s.status == 200]
        if lat:
            ax1.hist(lat, bins=50, alpha=0.55, label=f"{name} (p50 {np.percentile(lat, 50):.1f} ms)")
        t = np.array([s.t_s for s in result.samples if s.target == name and s.status == 200])
        if t.size:
            bins = np.arange(0, max(1.0, result.duration_s) + 1.0, 1.0)
            counts, edges = np.histogram(t, bins=bins)
            ax2.plot(edges[:-1], counts, drawstyle="steps-post", label=name)
    ax1.set_xlabel("latency (ms)"); ax1.set_ylabel("requests"); ax1.set_title("latency distribution")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("time (s)"); ax2.set_ylabel("successful requests / s"); ax2.set_title("throughput over time")
    ax2.legend(fontsize=8)
    fig.suptitle(f"{result.mode} @ concurrency {result.concurrency} against {result.url}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def default_prompts(limit: int = 2000) -> list[str]:
    """Real chat-sized prompts from the shared data: MT Bench first turns and GSM8K questions."""
    from bench.router_speed import real_prompts

    return real_prompts(limit, benchmarks=("mt_bench", "gsm8k"))


def loadtest(
    url: str = "http://127.0.0.1:8000",
    mode: str = "route",
    model: str = "router-random",
    direct_model: str | None = None,
    noop_prefix: str = "/noop",
    concurrency: int = 16,
    duration_s: float | None = 30.0,
    max_requests: int | None = None,
    rate_per_s: float | None = None,
    max_tokens: int = 16,
    out_dir: str | Path | None = None,
    api_key: str | None = None,
    prompts: Sequence[str] | None = None,
    warmup_requests: int = 0,
    slice_s: float | None = 5.0,
    repeat_share: float = 0.0,
) -> dict:
    """Python entry point of ``rayroute loadtest``; returns the JSON summary (and writes files)."""
    check_loopback(url)
    targets = make_targets(mode, model, direct_model, noop_prefix, max_tokens)
    result = run_load(url, targets, list(prompts) if prompts else default_prompts(), concurrency,
                      duration_s, max_requests, rate_per_s, api_key, warmup_requests=warmup_requests,
                      slice_s=slice_s, repeat_share=repeat_share)
    result.mode = mode
    summary = result.summary()
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"loadtest-{mode}.json").write_text(json.dumps(summary, indent=2) + "\n")
        summary["plot"] = str(plot(result, out / f"loadtest-{mode}.png"))
    return summary
