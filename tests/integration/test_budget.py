"""Live budget control on a real Ray Serve app with TWO ingress replicas: one shared state holds the
share for both, a killed replica's successor resumes from it, dollar names and a tenant's daily cap
(429 in OpenAI's shape with Retry-After) over real HTTP with the official openai SDK.

Both models are fake OpenAI-compatible servers on 127.0.0.1 (the weak one through
``weak_model.api_base_url``), so no vLLM starts; the router is ``linear_static`` (the served default when it was written),
scoring in each ingress replica.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest

from tests.integration.app_harness import booted_app, default_app_args, replica_actors, wait_new_replica
from tests.integration.openai_server import OpenAIServer

INGRESS_KEY = "rr-ingress-" + secrets.token_hex(12)
TEAM_KEY = "rr-team-" + secrets.token_hex(12)
STRONG_KEY = "sk-strong-" + secrets.token_hex(12)
WEAK_KEY = "sk-weak-" + secrets.token_hex(12)
MODEL = "router-linear_static-strong0.3"
KEY = "linear_static:-:share=0.3"


@pytest.fixture(scope="module")
def weak_server():
    srv = OpenAIServer(api_key=WEAK_KEY, model_reply="weak says hi").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def app_url(strong_server, weak_server):
    args = default_app_args(
        "unused", strong_server.base_url, "RR_BUD_STRONG_KEY", "RR_BUD_KEYS",
        routers=[{"alias": "linear_static", "source": "linear_static", "placement": "ingress",
                  "budget": {"strong_share": 0.5},
                  "calibration": {"prompts_file": "../shared/data/preferences/alpaca_eval/instructions.jsonl",
                                  "field": "instruction", "max_prompts": 100, "required": False}}],
        default_router="linear_static",
        weak_model={"api_base_url": weak_server.base_url, "model": "fake-weak", "served_model_name": "fake-weak",
                    "api_key_env": "RR_BUD_WEAK_KEY"},
        strong_price={"input_usd_per_1m_tokens": 1e6, "output_usd_per_1m_tokens": 0.0},  # $10 a strong call
        budget={"enabled": True, "sync_interval_s": 0.1, "tenants": [
            {"name": "team_a", "api_keys_env": "RR_BUD_TEAM_KEYS", "daily_cap_usd": 15.0, "on_cap": "reject"}]},
        deployments={"ingress": {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.1}},
                     "weak_model": {"ray_actor_options": {"num_cpus": 0.05}}},
    )
    env = {"RR_BUD_STRONG_KEY": STRONG_KEY, "RR_BUD_WEAK_KEY": WEAK_KEY, "RR_BUD_KEYS": INGRESS_KEY,
           "RR_BUD_TEAM_KEYS": TEAM_KEY}
    with booted_app(args, env) as url:
        yield url


def prompts(shared_data, n: int) -> list[str]:
    from routers.calibration import read_prompts

    rows = read_prompts(shared_data / "preferences" / "alpaca_eval" / "instructions.jsonl", "instruction")
    rng = np.random.default_rng(0)
    return [rows[i] for i in rng.choice(len(rows), n)]


def send(http: httpx.Client, texts: list[str], model: str = MODEL, concurrency: int = 8) -> list[httpx.Response]:
    def one(text):
        return http.post("/v1/chat/completions", json={"model": model, "max_tokens": 4,
                                                       "messages": [{"role": "user", "content": text}]})

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, texts))


def budget_view(http: httpx.Client, min_decisions: int = 0, timeout_s: float = 30) -> dict:
    """GET /v1/budget until the shared state has seen ``min_decisions`` for KEY (syncs are async)."""
    t0 = time.monotonic()
    while True:
        view = http.get("/v1/budget").json()
        n = view.get("keys", {}).get(KEY, {}).get("decisions", 0)
        if n >= min_decisions or time.monotonic() - t0 > timeout_s:
            return view
        time.sleep(0.2)


def replicas_answering(http: httpx.Client, timeout_s: float = 20) -> set[str]:
    """The ingress replicas that answer GET /v1/budget: concurrent batches (the proxy picks the less
    busy replica, so one-at-a-time requests may all land on one) until two answered or time is up."""
    seen: set[str] = set()
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        while len(seen) < 2 and time.monotonic() - t0 < timeout_s:
            seen |= set(pool.map(lambda _: http.get("/v1/budget").json()["replica"], range(32)))
    return seen


def test_two_replicas_hold_one_share_and_a_restarted_replica_resumes(http, shared_data):
    texts = prompts(shared_data, 700)
    replies = send(http, texts[:500])
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200][:2]
    assert {r.headers["x-rayroute-budget-target"] for r in replies} == {"share=0.3"}
    strong = np.array([r.headers["x-routed-model"] == "fake-strong" for r in replies])
    # a window after the first 200 requests holds the target (binomial noise alone is ±2 points sd)
    assert abs(strong[200:].mean() - 0.3) <= 0.05, strong[200:].mean()
    view = budget_view(http, 500)
    assert view["keys"][KEY]["decisions"] == 500  # both replicas' decisions, in one shared controller
    assert len(replicas_answering(http)) == 2  # the proxy spreads requests over both ingress replicas

    # kill one ingress replica; its successor takes α and the counts back from the shared state
    import ray

    actors = replica_actors("Ingress")
    ray.kill(actors[0][1], no_restart=True)
    wait_new_replica("Ingress", {n for n, _ in actors}, timeout_s=240)
    replies = send(http, texts[500:700])
    assert all(r.status_code == 200 for r in replies)
    view = budget_view(http, 700)
    assert view["keys"][KEY]["decisions"] == 700  # resumed, not restarted from zero
    strong = np.concatenate([strong, [r.headers["x-routed-model"] == "fake-strong" for r in replies]])
    assert abs(strong[200:].mean() - 0.3) <= 0.04, strong[200:].mean()


def test_router_target_and_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="router-linear_static", messages=[{"role": "user", "content": "Prove that sqrt(2) is irrational."}],
        max_tokens=4)
    assert raw.headers["x-rayroute-budget-target"] == "share=0.5"  # routers[].budget
    assert 0.0 <= float(raw.headers["x-router-threshold"]) <= 1.0  # the α the controller gave
    raw = client.chat.completions.with_raw_response.create(
        model="router-linear_static-0.99", messages=[{"role": "user", "content": "hello there"}], max_tokens=4)
    assert "x-rayroute-budget-target" not in raw.headers and raw.headers["x-router-threshold"] == "0.99"


@pytest.mark.parametrize("model, fragment", [("router-linear_static-usd-3", "'-3'"),
                                             ("router-linear_static-usdlots", "'lots'")])
def test_bad_dollar_names_are_400(client, model, fragment):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi there, friend"}])
    body = err.value.body
    assert body["param"] == "model" and fragment in body["message"]


def test_dollar_name_is_held(client):
    raw = client.chat.completions.with_raw_response.create(
        model="router-linear_static-usd40", messages=[{"role": "user", "content": "Explain recursion briefly."}],
        max_tokens=4)
    assert raw.headers["x-rayroute-budget-target"] == "usd_per_hour=40"


def test_tenant_cap_answers_429_with_retry_after(app_url):
    team = openai.OpenAI(base_url=app_url + "/v1", api_key=TEAM_KEY, max_retries=0, timeout=60)
    for _ in range(2):  # $10 each: the $15 cap is spent after the second
        raw = team.chat.completions.with_raw_response.create(
            model="fake-strong", messages=[{"role": "user", "content": "a strong question"}], max_tokens=4)
        assert raw.headers["x-rayroute-tenant"] == "team_a"
    time.sleep(1.0)  # the other replica learns the spend at its next sync
    for _ in range(4):  # both replicas refuse
        with pytest.raises(openai.RateLimitError) as err:
            team.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one more"}])
        assert err.value.body["code"] == "budget_exceeded" and "team_a" in err.value.body["message"]
        assert 1 <= int(err.value.response.headers["retry-after"]) <= 86401
