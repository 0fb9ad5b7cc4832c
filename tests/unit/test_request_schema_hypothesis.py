"""Property-based tests (hypothesis) of the request schema and the ingress's validation functions:
whatever a client sends, the outcome is a parsed request or ONE OpenAI-shaped 4xx from the error
table (never a 500, never an unexpected exception), naming the field at fault. No Ray; the live-app
counterpart is tests/integration/test_bad_input.py::test_generated_requests_get_200_or_clean_4xx."""

from __future__ import annotations

import asyncio
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.requests import Request

from deployments.errors import ModelNameError, ServingError, ThresholdError, classify, from_validation_error
from deployments.http import read_json
from deployments.protocol import ChatCompletionRequest, RouteRequest, parse_model_name

FIELDS = set(ChatCompletionRequest.model_fields)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**15, 10**15),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                               st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=12)
good_text = st.text(min_size=1, max_size=50).filter(lambda s: s.strip())
text_part = st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20)})
part = st.one_of(text_part, st.fixed_dictionaries({"type": st.just("image_url"),
                                                   "image_url": st.fixed_dictionaries({"url": st.text(max_size=10)})}))
# OpenAI's schema: images only in user turns, a tool result names its call
message = st.one_of(
    st.fixed_dictionaries({"role": st.just("user"), "content": st.one_of(st.text(max_size=40), st.lists(part, max_size=3))}),
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer", "assistant"]),
                           "content": st.one_of(st.text(max_size=40), st.lists(text_part, max_size=3))}),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": st.text(max_size=8),
                           "content": st.text(max_size=40)}))
user_msg = st.fixed_dictionaries({"role": st.just("user"), "content": good_text})
valid_request = st.fixed_dictionaries(
    {"model": st.sampled_from(["router-mf-0.5", "router-random", "router", "weak-x", "router-mf-strong0.3"]),
     "messages": st.tuples(st.lists(message, max_size=3), user_msg, st.lists(message, max_size=2)).map(
         lambda t: t[0] + [t[1]] + t[2])},
    optional={"max_tokens": st.integers(1, 1_000_000), "temperature": st.floats(0, 2),
              "top_p": st.floats(0.01, 1), "n": st.integers(1, 8), "stream": st.booleans(),
              "stop": st.one_of(st.text(max_size=5), st.lists(st.text(max_size=5), max_size=4)),
              "seed": st.integers(-2**31, 2**31), "max_completion_tokens": st.integers(1, 1000)})
# requests mutated field by field: valid shapes with arbitrary JSON values dropped in
mutated_request = st.builds(lambda base, key, value: {**base, key: value}, valid_request,
                            st.sampled_from(sorted(FIELDS | {"extra_field"})), json_value)
mutated_message = st.builds(lambda base, i, key, value: {**base, "messages": [
    {**m, key: value} if j == i else m for j, m in enumerate(base["messages"])]},
    valid_request, st.integers(0, 3), st.sampled_from(["role", "content", "name"]), json_value)


def _check_400(exc: ValidationError, data: dict) -> dict:
    err_obj = from_validation_error(exc)
    status, body = classify(err_obj)
    assert status == 400
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert isinstance(err["message"], str) and 10 < len(err["message"]) < 600
    if err["param"] is not None:
        assert err["param"].split(".")[0] in FIELDS | {"prompt"}, err
    json.dumps(body)  # serialisable as-is
    return err


@settings(max_examples=300, deadline=None)
@given(valid_request)
def test_valid_requests_parse_and_map_to_the_backend_payload(data):
    req = ChatCompletionRequest.model_validate(data)
    payload = req.backend_payload("m")
    assert payload == {**data, "model": "m"}  # the body as sent, model replaced
    assert req.stream is data.get("stream", False)
    json.dumps(payload)


@settings(max_examples=500, deadline=None)
@given(st.one_of(mutated_request, mutated_message, st.dictionaries(st.text(max_size=10), json_value, max_size=5)))
def test_any_body_parses_or_is_one_clean_400_naming_the_field(data):
    try:
        ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        _check_400(exc, data)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["model", "messages", "prompt", "x"]), json_value, max_size=4))
def test_route_request_parses_or_is_a_clean_400(data):
    try:
        RouteRequest.model_validate(data)
    except ValidationError as exc:
        _check_400(exc, data)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60),
                 st.builds(lambda n, t: f"router-{n}-{t}", st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
                           st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8)))))
def test_model_names_parse_or_raise_a_400_on_param_model(model):
    try:
        sel = parse_model_name(model, direct_models=("gpt-4o", "weak-x"))
    except (ModelNameError, ThresholdError) as exc:
        status, body = classify(exc)
        assert status == 400 and body["error"]["param"] == "model"
        return
    if sel.routed:
        for value in (sel.threshold, sel.strong_fraction):
            assert value is None or (math.isfinite(value) and 0.0 <= value <= 1.0)
    else:
        assert sel.direct_model in ("gpt-4o", "weak-x")


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 1), st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True))
def test_threshold_round_trips(threshold, name):
    sel = parse_model_name(f"router-{name}-{threshold!r}")
    assert sel.router == name and sel.threshold == threshold


def _request(body: bytes, content_type: str | None = "application/json", chunked: bool = False) -> Request:
    headers = []
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    if not chunked:
        headers.append((b"content-length", str(len(body)).encode()))
    chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)] or [b""]
    msgs = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return msgs.pop(0) if msgs else {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}, receive)




@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=6000), json_value.map(lambda v: json.dumps(v).encode()),
                 st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))),
       st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None, "multipart/form"]),
       st.booleans())
def test_read_json_returns_an_object_or_a_clean_4xx(body, ctype, chunked):
    try:
        data = asyncio.run(read_json(_request(body, ctype, chunked), max_body_bytes=4096))
    except ServingError as exc:
        status, out = classify(exc)
        assert status in (400, 413, 415), (status, out)
        assert set(out["error"]) == {"message", "type", "param", "code"}
        if len(body) > 4096 and status != 415:
            assert status == 413
        return
    assert isinstance(data, dict) and len(body) <= 4096
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # valid Unicode all the way down


def test_ci_runs_hypothesis_derandomised():
    import os
    import subprocess
    import sys

    code = "import tests.conftest; from hypothesis import settings; print(settings.default.derandomize)"
    env = {**os.environ, "CI": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "True"
