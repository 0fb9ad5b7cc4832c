"""Learning from traffic through the real server: Ray Serve on CPU, deployed from a Serve config (the
declarative API, as ``serve run serve_config.yaml``), real HTTP, the official openai SDK; strong and
weak models and the judge are the OpenAI-compatible fakes of ``bench.fake_backends``.

- label collection: every routed answer judged in both orders and stored;
- ``POST /v1/feedback`` with the ``x-request-id`` of an answer;
- promotion: a new checkpoint hot-reloaded through the ingress's ``user_config`` while clients keep
  sending requests: zero failed requests, the same ingress replica process, the new router serving.
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from bench.fake_backends import GoldenModelServer, JudgeServer
from bench.learning_demo import ALIAS, KEY_ENV, demo_app_args, running_app
from routers.learning.store import read_labels

HARD = [f"Prove that the integral of x^{k} from 0 to 1 equals 1/{k + 1}, step by step." for k in range(1, 40)]
EASY = [f"Say hello to my friend number {k} in a cheerful way, please." for k in range(1, 40)]
STRONG_OK = {q: True for q in HARD + EASY}
WEAK_OK = {**{q: False for q in HARD}, **{q: True for q in EASY}}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("labels"))
    with GoldenModelServer("fake-strong", STRONG_OK) as strong, GoldenModelServer("fake-weak", WEAK_OK) as weak, \
            JudgeServer(noise=0.0) as judge:
        args = demo_app_args("linear_static", strong.base_url, weak.base_url, judge.base_url, store)
        with running_app(args, env={KEY_ENV: "k-test"}) as (url, config):
            yield {"url": url, "config": config, "store": store, "judge": judge}


@pytest.fixture(scope="module")
def client(app):
    import openai

    return openai.OpenAI(base_url=app["url"] + "/v1", api_key="unused", timeout=60, max_retries=0)


def _wait_labels(store: str, n: int, timeout_s: float = 90) -> int:
    t0 = time.monotonic()
    got = 0
    while time.monotonic() - t0 < timeout_s:
        try:
            got = len(read_labels(store))
        except Exception:
            got = 0
        if got >= n:
            return got
        time.sleep(0.3)
    return got


def test_every_routed_answer_becomes_a_judged_label(app, client):
    for q in HARD[:3] + EASY[:3]:
        r = client.chat.completions.create(model=f"router-{ALIAS}", messages=[{"role": "user", "content": q}])
        assert r.choices[0].message.content
    assert _wait_labels(app["store"], 6) == 6
    df = read_labels(app["store"])
    by_prompt = dict(zip(df["prompt"], 1.0 - df["p_b_wins"]))  # P(strong better)
    assert [by_prompt[q] for q in HARD[:3]] == [1.0] * 3   # strong right, weak wrong: strong wins
    assert [by_prompt[q] for q in EASY[:3]] == [0.5] * 3   # both right: a tie
    assert set(df["kind"]) == {"judge"} and df["request_id"].str.len().min() > 0
    stats = httpx.get(app["url"] + "/v1/stats").json()["learning"]
    assert stats["labels"]["judge"] == 6 and stats["judge_calls"] == 12 and stats["label_spend_usd"] > 0


def test_feedback_on_an_answer_by_its_request_id(app, client):
    raw = client.chat.completions.with_raw_response.create(
        model=f"router-{ALIAS}", messages=[{"role": "user", "content": EASY[10]}])
    rid = raw.headers["x-request-id"]
    with httpx.Client(base_url=app["url"], timeout=30) as h:
        ok = h.post("/v1/feedback", json={"request_id": rid, "verdict": "up"})
        again = h.post("/v1/feedback", json={"request_id": rid, "score": 0.0})
        unknown = h.post("/v1/feedback", json={"request_id": "no-such-id", "verdict": "down"})
    assert ok.status_code == 200 and ok.json()["recorded"] is True
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_feedback"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_request_id"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        df = read_labels(app["store"], kinds=("feedback",))
        if len(df):
            break
        time.sleep(0.3)
    assert df["request_id"].tolist() == [rid]


def _candidate(path) -> str:
    """A real, different linear router: trained on the fakes' questions (hard: strong needed)."""
    from routers.embeddings import embedder_from_spec
    from routers.models.linear import fit_linear

    emb = embedder_from_spec("static")
    prompts = HARD + EASY
    y = np.array([1.0] * len(HARD) + [0.0] * len(EASY))
    fit_linear(prompts, emb.embed(prompts), y, embedder=emb, info={"sources": ["test"]}).save(path)
    return str(path)


def _ingress_pid() -> int:
    from tests.integration.app_harness import replica_actors, replica_pid

    (name, handle), = replica_actors("Ingress")
    return replica_pid(handle)


def test_promotion_is_a_hot_reload_with_zero_failed_requests_under_load(app, client, tmp_path):
    from deployments.promotion import apply_config, current_source, promoted_config

    url = app["url"]
    probe = {"model": f"router-{ALIAS}", "prompt": HARD[30]}
    before = httpx.post(url + "/v1/route", json=probe).json()["p_strong"]
    pid = _ingress_pid()
    cand = _candidate(tmp_path / "linear_static-v2")

    results = {"ok": 0, "failed": []}
    stop = threading.Event()

    def load(i: int) -> None:
        import openai

        c = openai.OpenAI(base_url=url + "/v1", api_key="unused", timeout=60, max_retries=0)
        k = 0
        while not stop.is_set():
            q = (HARD + EASY)[(i * 7 + k) % (len(HARD) + len(EASY))]
            k += 1
            try:
                c.chat.completions.create(model=f"router-{ALIAS}", messages=[{"role": "user", "content": q}])
                results["ok"] += 1
            except Exception as exc:
                results["failed"].append(repr(exc)[:200])

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        config = promoted_config(app["config"], "rayroute", ALIAS, cand)
        assert config["applications"][0]["args"] == app["config"]["applications"][0]["args"]  # code unchanged
        assert current_source(config, "rayroute", ALIAS) == cand
        ok_before = results["ok"]
        apply_config(config)
        t0 = time.monotonic()
        while httpx.get(url + "/v1/stats").json()["router_versions"][ALIAS] != "linear_static-v2":
            assert time.monotonic() - t0 < 120, "the new router never served"
            time.sleep(0.2)
        time.sleep(2)
        back = promoted_config(config, "rayroute", ALIAS, "checkpoints/linear_static")  # and back again
        apply_config(back)
        while httpx.get(url + "/v1/stats").json()["router_versions"][ALIAS] != "linear_static":
            assert time.monotonic() - t0 < 240, "the second swap never happened"
            time.sleep(0.2)
        mid = httpx.post(url + "/v1/route", json=probe).json()["p_strong"]
        apply_config(config)
        while httpx.get(url + "/v1/stats").json()["router_versions"][ALIAS] != "linear_static-v2":
            assert time.monotonic() - t0 < 360, "the third swap never happened"
            time.sleep(0.2)
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join(70)
    app["config"] = config  # what the app runs now: later changes start from it
    after = httpx.post(url + "/v1/route", json=probe).json()["p_strong"]
    stats = httpx.get(url + "/v1/stats").json()
    assert results["failed"] == [], results["failed"][:5]
    assert results["ok"] > ok_before > 0
    assert _ingress_pid() == pid                       # reconfigured in place, never restarted
    assert stats["router_reloads"][ALIAS] == 3
    assert mid == pytest.approx(before) and after != pytest.approx(before) and after > 0.5


def test_a_shadow_candidate_scores_live_traffic_and_changes_nothing(app, client, tmp_path):
    from deployments.promotion import apply_config, promoted_config

    cand = _candidate(tmp_path / "shadow-candidate")
    serving = httpx.get(app["url"] + "/v1/stats").json()["router_versions"][ALIAS]
    config = promoted_config(app["config"], "rayroute", ALIAS, None,  # the config the app runs, plus a shadow
                             shadow={ALIAS: {"source": cand, "threshold": 0.5}})
    apply_config(config)
    routed = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        raw = client.chat.completions.with_raw_response.create(
            model=f"router-{ALIAS}", messages=[{"role": "user", "content": HARD[len(routed) % 10]}])
        routed.append(raw.headers["x-routed-model"])
        shadow = httpx.get(app["url"] + "/v1/stats").json()["learning"]["shadow"].get(ALIAS)
        if shadow and shadow["decisions"] >= 5:
            break
    assert shadow["decisions"] >= 5 and shadow["would_strong_fraction"] == 1.0  # trained: hard -> strong
    assert httpx.get(app["url"] + "/v1/stats").json()["router_versions"][ALIAS] == serving  # nothing promoted
