"""N-way routing on real Ray Serve (CPU), over real HTTP, with the official ``openai`` client: four
OpenAI-compatible fake backends (``bench.fake_openai``) at different prices, each behind its own
StrongModel replica, and a real kNN checkpoint (hash-64 embedder, synthetic outcomes that make the
choice unambiguous: ``tests.fakes.NWAY_EXPECTED``) scored in the ingress.

One Ray cluster + one Serve app for the module, deployed from a Serve config (the declarative API,
as ``serve run serve_config.yaml``, so that a changed ``user_config`` is a hot reload); no vLLM (the
two-model pair is two more fakes), so it boots in well under a minute. Ray is stopped in
``finally`` even when start-up fails.
"""

from __future__ import annotations

import secrets
from typing import Any

import openai
import pytest

from bench.fake_openai import FakeOpenAI
from tests.fakes import NWAY_EXPECTED, NWAY_HARD_PROMPT, NWAY_MODELS, NWAY_PRICES, nway_knn_checkpoint
from bench.learning_demo import running_app
from tests.integration.app_harness import fake_remote, fake_servers, nway_app_args

INGRESS_KEY = "rr-test-" + secrets.token_hex(8)
BACKEND_KEY = "sk-fake-" + secrets.token_hex(8)
START_TIMEOUT_S = 240
MSG = [{"role": "user", "content": NWAY_HARD_PROMPT}]


class SwitchableFake(FakeOpenAI):
    """A fake backend that answers ``fail_status`` (an HTTP error) while it is set, and, while
    ``window_chars`` is set, rejects a longer conversation as vLLM's OpenAI server does (400)."""

    fail_status: int | None = None
    window_chars: int | None = None

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.fail_status is not None:
            return self.fail_status, {"error": {"message": "overloaded", "type": "server_error", "code": None}}
        chars = sum(len(m["content"]) for m in body["messages"] if isinstance(m.get("content"), str))
        if self.window_chars is not None and chars > self.window_chars:
            return 400, {"error": {"message": f"This model's maximum context length is {self.window_chars // 4} "
                                              f"tokens. However, your prompt contains {chars} characters",
                                   "type": "BadRequestError", "param": "input_text", "code": 400}}
        return super().reply(body)


@pytest.fixture(scope="module")
def backends():
    with fake_servers([*NWAY_MODELS, "fake-strong", "fake-weak"], SwitchableFake, completion_tokens=8) as servers:
        yield servers


@pytest.fixture(scope="module")
def app(tmp_path_factory, backends):
    checkpoint = nway_knn_checkpoint(tmp_path_factory.mktemp("nway") / "nway_knn")

    models = [{"name": n, "remote": fake_remote(backends, n),
               "price": {"input_usd_per_1m_tokens": p, "output_usd_per_1m_tokens": p}}
              for n, p in zip(NWAY_MODELS, NWAY_PRICES)]
    args = nway_app_args(backends, models, checkpoint, default_cost_weight=0.2, max_fallbacks=2)
    args["weak_model"]["route_strong_for"] = ["images", "audio", "tools", "context"]
    env = {"RR_TEST_KEYS": INGRESS_KEY, "RR_NWAY_KEY": BACKEND_KEY}
    with running_app(args, env, wait_s=START_TIMEOUT_S) as (url, config):
        yield {"url": url, "config": config, "checkpoint": str(checkpoint)}


@pytest.fixture(scope="module")
def app_url(app):
    return app["url"]


def _raw(client, **kwargs):
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    return raw, raw.parse()


def test_models_lists_the_nway_router_and_models(client):
    ids = {m.id for m in client.models.list().data}
    assert ids == {"router-random", "fake-strong", "fake-weak", "router-knn", *NWAY_MODELS}


@pytest.mark.parametrize("weight", sorted(NWAY_EXPECTED))
def test_routing_follows_the_rule(client, backends, weight):
    expected = NWAY_EXPECTED[weight]
    before = {n: backends[n].calls for n in NWAY_MODELS}
    raw, resp = _raw(client, model=f"router-knn-cost{weight:g}", messages=MSG, max_tokens=8)
    assert resp.model == expected and raw.headers["x-routed-model"] == expected
    assert raw.headers["x-router"] == "knn" and "x-rayroute-fallback" not in raw.headers
    assert 0 <= float(raw.headers["x-router-quality"]) <= 1
    assert resp.choices[0].message.content == f"{expected} answers"  # the backend's own reply
    assert {n: backends[n].calls - before[n] for n in NWAY_MODELS} == {n: int(n == expected) for n in NWAY_MODELS}


def test_route_returns_the_ranked_candidates(http):
    body = http.post("/v1/route", json={"model": "router-knn", "messages": MSG, "max_tokens": 50}).json()
    assert body["routed_model"] == "m-mid" and body["cost_weight"] == 0.2  # the configured default λ
    assert [c["model"] for c in body["candidates"]] == ["m-mid", "m-big", "m-small", "m-cheap"]
    costs = {c["model"]: c["estimated_cost_usd"] for c in body["candidates"]}
    assert costs["m-big"] == pytest.approx((body["prompt_tokens"] + 50) * 20.0 / 1e6)
    assert [c["relative_cost"] for c in body["candidates"]] == pytest.approx([0.25, 1.0, 0.05, 0.005])
    assert body["candidates"][0]["score"] == pytest.approx(0.9 - 0.2 * 0.25, abs=1e-6)


def test_a_failing_backend_falls_back_to_the_next_candidate(client, http, backends):
    backends["m-mid"].fail_status = 503
    try:
        raw, resp = _raw(client, model="router-knn-cost0.2", messages=MSG, max_tokens=8)
    finally:
        backends["m-mid"].fail_status = None
    assert resp.model == "m-big" and raw.headers["x-routed-model"] == "m-big"
    assert raw.headers["x-rayroute-fallback"] == "m-mid_failed:upstream_http_503"
    stats = http.get("/v1/stats").json()
    assert {"reason": "upstream_http_503", "from_model": "m-mid", "to_model": "m-big", "count": 1} in stats["fallbacks"]
    assert any(c["router"] == "knn" and c["model"] == "m-mid" for c in stats["nway_choices"])
    assert stats["estimated_cost_usd"]["m-big"] > 0


def test_streaming_routes_and_falls_back_the_same_way(client, backends):
    def stream(model):
        raw = client.chat.completions.with_raw_response.create(model=model, messages=MSG, max_tokens=8, stream=True)
        return raw.headers, list(raw.parse())

    headers, chunks = stream("router-knn-cost0.2")
    assert headers["x-routed-model"] == "m-mid" and "x-rayroute-fallback" not in headers
    assert {c.model for c in chunks} == {"m-mid"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "m-mid answers"
    backends["m-mid"].fail_status = 503  # the model is chosen, and falls back, before the first chunk
    try:
        headers, chunks = stream("router-knn-cost0.2")
    finally:
        backends["m-mid"].fail_status = None
    assert headers["x-routed-model"] == "m-big" and headers["x-rayroute-fallback"] == "m-mid_failed:upstream_http_503"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "m-big answers"


def test_a_conversation_over_a_remote_window_goes_on(client, backends):
    """A remote backend's "maximum context length" 400 (vLLM's words, over real HTTP) is told apart
    from other 400s: N-way, the next candidate answers; two-model, a weak model with ``context`` in
    ``route_strong_for`` hands the conversation to the strong model."""
    long_msg = [{"role": "user", "content": " ".join([NWAY_HARD_PROMPT] * 8)}]
    for fake in ("m-mid", "fake-weak"):
        backends[fake].window_chars = len(NWAY_HARD_PROMPT) * 4
    try:
        raw, resp = _raw(client, model="router-knn-cost0.2", messages=long_msg, max_tokens=4)
        assert resp.model == "m-big" and raw.headers["x-rayroute-fallback"] == "m-mid_failed:context_length_exceeded"
        assert _raw(client, model="router-knn-cost0.2", messages=MSG, max_tokens=4)[1].model == "m-mid"  # fits
        raw, resp = _raw(client, model="router-random-1", messages=long_msg, max_tokens=4)  # α = 1: weak
        assert resp.model == "fake-strong" and raw.headers["x-rayroute-capability"] == "context"
        with pytest.raises(openai.BadRequestError) as ei:  # named directly: the model's own verdict
            client.chat.completions.create(model="m-mid", messages=long_msg, max_tokens=4)
        assert ei.value.code == "context_length_exceeded" and "'m-mid'" in ei.value.message
    finally:
        for fake in ("m-mid", "fake-weak"):
            backends[fake].window_chars = None


def test_bad_cost_weight_is_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="router-knn-cost-1", messages=MSG)
    assert "'-1'" in exc.value.message and "router-knn-cost0.2" in exc.value.message


def test_an_nway_model_by_name_and_the_two_model_app_alongside(client):
    raw, resp = _raw(client, model="m-small", messages=MSG, max_tokens=4)
    assert resp.model == "m-small" and raw.headers["x-router"] == "none"
    raw, resp = _raw(client, model="router-random-0", messages=MSG, max_tokens=4)
    assert resp.model == "fake-strong" and raw.headers["x-routed-model"] == "fake-strong"


def test_the_ingress_scores_on_one_blas_thread(app_url):
    """The N-way decision's speed (docs/nway-routing.md, bench-nway) assumes BLAS on one thread in
    the ingress: a 2-thread matrix-vector product on a busy 2-core node is ~50x slower. Ray sets
    OMP_NUM_THREADS=1 for a fractional num_cpus before the replica loads numpy."""
    import ray

    from tests.integration.app_harness import replica_actors

    (_, ingress), = replica_actors("Ingress")

    def blas(_self):
        import os

        from threadpoolctl import threadpool_info

        return os.environ.get("OMP_NUM_THREADS"), sorted({i["num_threads"] for i in threadpool_info()
                                                          if i["user_api"] == "blas"})

    assert ray.get(ingress.__ray_call__.remote(blas), timeout=30) == ("1", [1])


def test_a_new_nway_checkpoint_hot_reloads_through_the_serve_config_under_load(app, client, http, tmp_path):
    """A changed ``nway_routers`` source in the ingress's ``user_config`` (applied as ``serve deploy``
    would) swaps the router in place: same replica, no failed request, the new router's choice."""
    import copy
    import threading
    import time

    from deployments.app import ingress_user_config
    from deployments.config import AppArgs
    from deployments.promotion import apply_config
    from routers.nway.knn import KNNQualityRouter
    from tests.fakes import HashEmbedder, nway_training
    from tests.integration.app_harness import replica_actors

    prompts, outcomes = nway_training()
    flipped = tmp_path / "nway_knn_flipped"  # m-cheap and m-big trade their outcomes
    KNNQualityRouter.fit(prompts, outcomes[:, ::-1], NWAY_MODELS, HashEmbedder(64), k=5).save(flipped)

    def with_source(source: str) -> dict[str, Any]:
        config = copy.deepcopy(app["config"])
        spec = config["applications"][0]
        uc = ingress_user_config(AppArgs.model_validate(spec["args"]))
        uc["nway_routers"]["knn"]["source"] = source
        spec["deployments"] = [{"name": "Ingress", "user_config": uc}]
        return config

    def version() -> str:
        return http.get("/v1/stats").json()["router_versions"]["knn"]

    def wait_for(v: str, limit_s: float = 120) -> None:
        t0 = time.monotonic()
        while version() != v:
            assert time.monotonic() - t0 < limit_s, f"router version never became {v!r}"
            time.sleep(0.2)

    (name_before, _), = replica_actors("Ingress")
    results: dict[str, Any] = {"models": [], "failed": []}
    stop = threading.Event()

    def load() -> None:
        c = openai.OpenAI(base_url=app["url"] + "/v1", api_key=INGRESS_KEY, timeout=60, max_retries=0)
        while not stop.is_set():
            try:
                r = c.chat.completions.create(model="router-knn-cost0", messages=MSG, max_tokens=4)
                results["models"].append(r.model)
            except Exception as exc:  # every failure is a finding
                results["failed"].append(repr(exc)[:200])

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        time.sleep(1)
        apply_config(with_source(str(flipped)))
        wait_for("nway_knn_flipped")
        time.sleep(1)
        resp = client.chat.completions.create(model="router-knn-cost0", messages=MSG, max_tokens=4)
        assert resp.model == "m-cheap"  # the flipped router's best model at λ = 0
    finally:
        stop.set()
        thread.join(70)
        apply_config(with_source(app["checkpoint"]))  # back, for any test that runs after this one
        wait_for("nway_knn")
    (name_after, _), = replica_actors("Ingress")
    assert results["failed"] == [], results["failed"][:5]
    assert name_after == name_before  # the same replica: reconfigured in place, never restarted
    assert "m-big" in results["models"] and "m-cheap" in results["models"]  # served before and after the swap
    assert client.chat.completions.create(model="router-knn-cost0", messages=MSG, max_tokens=4).model == "m-big"
