"""Issue 17, against the real app: the full chat API through the router with the official openai SDK.

The weak model is the tiny random Llama on vLLM's own OpenAI layer (tool-call parser ``hermes``;
structured output on xgrammar without free whitespace, so that even a random model closes its JSON
within a few tokens); the strong model is the fake OpenAI server, which records what it received.
``router-random-1`` always routes weak, ``router-random-0`` always strong.
"""

from __future__ import annotations

import json
import secrets

import jsonschema
import openai
import pytest

from tests.integration.app_harness import booted_app
from tests.fakes import CHAT_FIELDS, CITY_SCHEMA, WEATHER_TOOL

INGRESS_KEY = "rr-test-" + secrets.token_hex(8)
STRONG_KEY = "sk-strong-" + secrets.token_hex(8)
STRONG_NAME = "fake-strong"
WEAK_NAME = "weak-tiny-llama"
WEAK, STRONG = "router-random-1", "router-random-0"

TOOLS = [WEATHER_TOOL]
NAMED = {"type": "function", "function": {"name": "get_weather"}}
ANSWER = {"type": "object", "properties": {"ok": {"type": "boolean"}, "color": {"enum": ["red", "blue"]}},
          "required": ["ok", "color"], "additionalProperties": False}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER, "strict": True}}
MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is the weather in Paris?"}]
IMAGE = [{"role": "user", "content": [{"type": "text", "text": "what is in this picture?"},
                                      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, strong_server):
    from ops.weak_model_builder import build_tiny_llama

    model_dir = build_tiny_llama(tmp_path_factory.mktemp("parity") / "tiny-llama")
    args = {
        "routers": [{"alias": "random", "kwargs": {"seed": 0}}],
        "weak_model": {"model": str(model_dir), "served_model_name": WEAK_NAME, "max_model_len": 512,
                       "max_tokens_default": 16, "max_num_seqs": 4, "tool_call_parser": "hermes",
                       "structured_outputs": {"backend": "xgrammar", "disable_any_whitespace": True}},
        "strong_model": {"base_url": strong_server.base_url, "model": STRONG_NAME, "api_key_env": "RR_TEST_STRONG_KEY",
                         "request_timeout_s": 5, "max_retries": 0, "cooldown_failures": 0},
        "ingress": {"api_keys_env": "RR_TEST_KEYS", "backend_timeout_s": 60},
        "deployments": {
            "ingress": {"ray_actor_options": {"num_cpus": 0.1}},
            "router": {"ray_actor_options": {"num_cpus": 0.1}},
            "weak_model": {"ray_actor_options": {"num_cpus": 1}},
            "strong_model": {"ray_actor_options": {"num_cpus": 0.1}},
        },
    }
    env = {"RR_TEST_KEYS": INGRESS_KEY, "RR_TEST_STRONG_KEY": STRONG_KEY}
    with booted_app(args, env, 420) as url:
        yield url


def _stream(client, **kwargs):
    return list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))


def _streamed_tool_call(chunks) -> tuple[str, str]:
    name, args = "", ""
    for c in chunks:
        for call in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            name += call.function.name or "" if call.function else ""
            args += call.function.arguments or "" if call.function else ""
    return name, args


# --- the weak model: tools, structured output, logprobs, plain and streaming ----------------------


# vLLM's tool-call grammar (unlike response_format's) allows free whitespace inside the arguments,
# on which a random model can spend many tokens: a large budget, and a seed that finishes in ~75
TOOL_CALL = {"messages": [{"role": "user", "content": "weather in Paris?"}], "tools": TOOLS, "tool_choice": NAMED,
             "max_tokens": 440, "seed": 1}


def test_weak_named_tool_choice_returns_a_tool_call_with_json_arguments(client):
    raw = client.chat.completions.with_raw_response.create(model=WEAK, **TOOL_CALL)
    resp = raw.parse()
    assert resp.model == WEAK_NAME and raw.headers["x-routed-model"] == WEAK_NAME
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), CITY_SCHEMA)


def test_weak_named_tool_choice_streams_tool_call_deltas(client):
    chunks = _stream(client, model=WEAK, **TOOL_CALL)
    name, args = _streamed_tool_call(chunks)
    assert {c.model for c in chunks} == {WEAK_NAME} and name == "get_weather"
    jsonschema.validate(json.loads(args), CITY_SCHEMA)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


def test_weak_json_schema_output_validates(client):
    resp = client.chat.completions.create(model=WEAK, messages=MSG, response_format=JSON_SCHEMA, max_tokens=60)
    jsonschema.validate(json.loads(resp.choices[0].message.content), ANSWER)


def test_weak_json_schema_output_validates_streaming(client):
    chunks = _stream(client, model=WEAK, messages=MSG, response_format=JSON_SCHEMA, max_tokens=60)
    jsonschema.validate(json.loads("".join(c.choices[0].delta.content or "" for c in chunks if c.choices)), ANSWER)


def test_weak_logprobs(client):
    resp = client.chat.completions.create(model=WEAK, messages=MSG, logprobs=True, top_logprobs=2, max_tokens=3)
    content = resp.choices[0].logprobs.content
    assert len(content) == resp.usage.completion_tokens and all(len(t.top_logprobs) == 2 for t in content)


def test_weak_logprobs_streaming(client):
    chunks = _stream(client, model=WEAK, messages=MSG, logprobs=True, top_logprobs=2, max_tokens=3)
    tokens = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert tokens and all(len(t.top_logprobs) == 2 for t in tokens)


def test_a_schema_vllm_rejects_is_a_400_in_vllms_words(client, http):
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "banana"}}}
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=WEAK, messages=MSG, response_format=bad, max_tokens=5)
    assert "the weak model rejected the request" in ei.value.message and "banana" in ei.value.message
    assert http.get("/health").status_code == 200


# --- the strong model: every field arrives unchanged ------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_every_field_reaches_the_strong_model_unchanged(http, strong_server, stream):
    body = {"model": STRONG, **CHAT_FIELDS, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text[:300]
    got = strong_server.requests[-1]
    for key, value in body.items():
        if key != "model":
            assert got[key] == value, key
    assert got["model"] == STRONG_NAME


def test_strong_tool_call_deltas_and_usage_stream_through(client):
    chunks = _stream(client, model=STRONG, messages=MSG, tools=TOOLS)
    assert _streamed_tool_call(chunks) == ("get_weather", "{}")
    assert {c.model for c in chunks} == {STRONG_NAME} and chunks[-1].usage.total_tokens == 15


# --- malformed fields: a 400 naming the field; the server stays up --------------------------------


@pytest.mark.parametrize("patch, param", [
    ({"response_format": {"type": "banana"}}, "response_format"),
    ({"logprobs": "yes"}, "logprobs"),
    ({"tools": "nope"}, "tools"),
    ({"tools": [{"type": "function", "function": {"parameters": CITY_SCHEMA}}]}, "tools.0.function.name"),
    ({"top_logprobs": "2"}, "top_logprobs"),
    ({"tool_choice": 5}, "tool_choice"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"seed": "x"}, "seed"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "no call id"}]}, "messages.1"),
])
def test_a_malformed_field_is_a_400_naming_it(http, patch, param):
    r = http.post("/v1/chat/completions", json={"model": WEAK, "messages": MSG, "max_tokens": 2, **patch})
    err = r.json()["error"]
    assert r.status_code == 400 and err["type"] == "invalid_request_error" and err["param"].startswith(param), err
    assert http.post("/v1/chat/completions", json={"model": WEAK, "messages": MSG, "max_tokens": 2}).status_code == 200


# --- what the text-only weak model cannot serve ----------------------------------------------------


def test_an_image_routed_weak_goes_strong_with_the_reason(client, http):
    raw = client.chat.completions.with_raw_response.create(model=WEAK, messages=IMAGE, max_tokens=4)
    assert raw.parse().model == STRONG_NAME and raw.headers["x-rayroute-capability"] == "images"
    stats = http.get("/v1/stats").json()
    assert {"router": "random", "feature": "images"} in [{k: s[k] for k in ("router", "feature")}
                                                          for s in stats["capability_routes"]]


def test_an_image_sent_to_the_weak_model_by_name_is_a_400_naming_feature_and_model(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=WEAK_NAME, messages=IMAGE, max_tokens=4)
    assert "images" in ei.value.message and WEAK_NAME in ei.value.message
    assert ei.value.body["code"] == "unsupported_feature"


def test_stream_of_a_bad_request_to_the_weak_model_is_a_400_not_a_broken_stream(http):
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "banana"}}}
    r = http.post("/v1/chat/completions", json={"model": WEAK, "messages": MSG, "stream": True, "response_format": bad})
    assert r.status_code == 400 and "banana" in r.json()["error"]["message"]
