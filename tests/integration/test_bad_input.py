"""Bad input through real HTTP against the default app on Ray Serve (issue 8).

Every kind of bad request gets an OpenAI-shaped error (``{"error": {"message", "type", "param",
"code"}}``) with the right status and ``param`` where one field is at fault, and right after each one
the server still answers a good request and ``/health``. Odd-but-valid input (unicode, control
characters, a prompt longer than the router's embedder reads) is answered, not rejected. A bounded
property-based run (hypothesis) sends generated request bodies to the live app.
"""

from __future__ import annotations

import json
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.app_harness import STRONG_NAME, WEAK_NAME, booted_app, default_app_args
from tests.integration.openai_server import OpenAIServer

INGRESS_KEY = "rr-bad-" + secrets.token_hex(10)
STRONG_KEY = "sk-bad-" + secrets.token_hex(10)
MAX_BODY = 1 << 20  # serve_config.yaml's ingress.max_body_bytes
GOOD = {"model": "router-random-1", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}
U = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from ops.weak_model_builder import build_tiny_llama

    srv = OpenAIServer(api_key=STRONG_KEY).start()
    try:
        model_dir = build_tiny_llama(tmp_path_factory.mktemp("bad") / "tiny-llama")
        args = default_app_args(model_dir, srv.base_url, "RR_BAD_STRONG_KEY", "RR_BAD_KEYS")
        assert args["ingress"]["max_body_bytes"] == MAX_BODY
        with booted_app(args, {"RR_BAD_STRONG_KEY": STRONG_KEY, "RR_BAD_KEYS": INGRESS_KEY}) as url:
            yield url
    finally:
        srv.stop()



def j(obj) -> dict:
    return {"content": json.dumps(obj).encode(), "headers": {"content-type": "application/json"}}


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


# (id, path, request kwargs, status, code (None: any), param (... = not checked))
CASES = [
    ("malformed_json", "/v1/chat/completions", {"content": b'{"model": "router-random-1", "messages": [',
                                                 "headers": {"content-type": "application/json"}},
     400, "invalid_json", None),
    ("empty_body", "/v1/chat/completions", {"content": b"", "headers": {"content-type": "application/json"}},
     400, "invalid_json", None),
    ("json_array_not_object", "/v1/chat/completions", j([GOOD]), 400, "invalid_json", None),
    ("json_string_not_object", "/v1/chat/completions", j("hello"), 400, "invalid_json", None),
    ("invalid_utf8", "/v1/chat/completions", {"content": b'{"model": "router-random-1", "messages": "\xff\xfe"}',
                                              "headers": {"content-type": "application/json"}},
     400, "invalid_json", None),
    ("nested_too_deep", "/v1/chat/completions", {"content": _deep(100_000),
                                                 "headers": {"content-type": "application/json"}},
     400, "invalid_json", None),
    ("lone_surrogate", "/v1/chat/completions",
     {"content": b'{"model": "router-random-1", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
      "headers": {"content-type": "application/json"}}, 400, "invalid_json", None),
    ("content_type_text_plain", "/v1/chat/completions",
     {"content": json.dumps(GOOD).encode(), "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type", None),
    ("content_type_form", "/v1/chat/completions",
     {"content": b"model=router-random-1", "headers": {"content-type": "application/x-www-form-urlencoded"}},
     415, "unsupported_media_type", None),
    ("body_over_limit", "/v1/chat/completions",
     j({**GOOD, "messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]}), 413, "request_too_large", None),
    ("body_over_limit_chunked_no_length", "/v1/chat/completions",
     {"content": iter([b'{"model": "router-random-1", "messages": [{"role": "user", "content": "'] +
                      [b"y" * 65536] * 17 + [b'"}]}']), "headers": {"content-type": "application/json"}},
     413, "request_too_large", None),
    ("missing_messages", "/v1/chat/completions", j({"model": "router-random-1"}), 400, "invalid_value", "messages"),
    ("empty_messages", "/v1/chat/completions", j({"model": "router-random-1", "messages": []}), 400,
     "invalid_value", "messages"),
    ("messages_not_a_list", "/v1/chat/completions", j({"model": "router-random-1", "messages": "hi"}), 400,
     "invalid_value", "messages"),
    ("wrong_role", "/v1/chat/completions", j({"model": "router-random-1", "messages": [{"role": "wizard", "content": "hi"}]}),
     400, "invalid_value", "messages.0.role"),
    ("missing_role", "/v1/chat/completions", j({"model": "router-random-1", "messages": [{"content": "hi"}]}),
     400, "invalid_value", "messages.0.role"),
    ("non_string_content", "/v1/chat/completions",
     j({"model": "router-random-1", "messages": [{"role": "user", "content": 42}]}), 400, "invalid_value",
     "messages.0.content"),
    ("null_user_content", "/v1/chat/completions",
     j({"model": "router-random-1", "messages": [{"role": "user", "content": None}]}), 400, "invalid_value", "messages.0"),
    ("image_only_parts", "/v1/chat/completions",
     j({"model": "router-random-1", "messages": [{"role": "user", "content": [
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
     400, "invalid_value", "messages"),
    ("text_part_without_text", "/v1/chat/completions",
     j({"model": "router-random-1", "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
     400, "invalid_value", "messages.0.content"),
    ("system_only_no_user", "/v1/chat/completions",
     j({"model": "router-random-1", "messages": [{"role": "system", "content": "be brief"}]}), 400, "invalid_value",
     "messages"),
    ("blank_user_text", "/v1/chat/completions",
     j({"model": "router-random-1", "messages": [{"role": "user", "content": " \n\t "}]}), 400, "invalid_value",
     "messages"),
    ("missing_model", "/v1/chat/completions", j({"messages": U}), 400, "invalid_value", "model"),
    ("model_not_string", "/v1/chat/completions", j({"model": 7, "messages": U}), 400, "invalid_value", "model"),
    ("model_too_long", "/v1/chat/completions", j({"model": "router-" + "a" * 300, "messages": U}), 400,
     "invalid_value", "model"),
    ("unknown_router", "/v1/chat/completions", j({"model": "router-nope-0.5", "messages": U}), 400,
     "unknown_router", "model"),
    ("unknown_model", "/v1/chat/completions", j({"model": "gpt-5", "messages": U}), 400, "invalid_model_name", "model"),
    ("router_mf_abc", "/v1/chat/completions", j({"model": "router-mf-abc", "messages": U}), 400,
     "invalid_model_name", "model"),
    ("router_name_with_hyphen", "/v1/chat/completions", j({"model": "router-sw-ranking-0.5", "messages": U}), 400,
     "invalid_model_name", "model"),
    ("threshold_below_0", "/v1/chat/completions", j({"model": "router-mf--0.1", "messages": U}), 400,
     "invalid_model_name", "model"),
    ("threshold_above_1", "/v1/chat/completions", j({"model": "router-mf-1.5", "messages": U}), 400,
     "threshold_out_of_range", "model"),
    ("threshold_nan", "/v1/chat/completions", j({"model": "router-mf-nan", "messages": U}), 400,
     "threshold_out_of_range", "model"),
    ("threshold_inf", "/v1/chat/completions", j({"model": "router-mf-inf", "messages": U}), 400,
     "threshold_out_of_range", "model"),
    ("strong_fraction_above_1", "/v1/chat/completions", j({"model": "router-mf-strong1.5", "messages": U}), 400,
     "threshold_out_of_range", "model"),
    ("max_tokens_negative", "/v1/chat/completions", j({**GOOD, "max_tokens": -5}), 400, "invalid_value", "max_tokens"),
    ("max_tokens_zero", "/v1/chat/completions", j({**GOOD, "max_tokens": 0}), 400, "invalid_value", "max_tokens"),
    ("max_tokens_huge", "/v1/chat/completions", j({**GOOD, "max_tokens": 10**12}), 400, "invalid_value", "max_tokens"),
    ("max_tokens_fractional", "/v1/chat/completions", j({**GOOD, "max_tokens": 1.5}), 400, "invalid_value",
     "max_tokens"),
    ("max_completion_tokens_negative", "/v1/chat/completions", j({**GOOD, "max_completion_tokens": -1}), 400,
     "invalid_value", "max_completion_tokens"),
    ("stream_not_bool_string", "/v1/chat/completions", j({**GOOD, "stream": "yes"}), 400, "invalid_value", "stream"),
    ("stream_not_bool_int", "/v1/chat/completions", j({**GOOD, "stream": 1}), 400, "invalid_value", "stream"),
    ("temperature_nan", "/v1/chat/completions",
     {"content": b'{"model": "router-random-1", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
      "headers": {"content-type": "application/json"}}, 400, "invalid_value", "temperature"),
    ("temperature_too_high", "/v1/chat/completions", j({**GOOD, "temperature": 5}), 400, "invalid_value", "temperature"),
    ("top_p_zero", "/v1/chat/completions", j({**GOOD, "top_p": 0}), 400, "invalid_value", "top_p"),
    ("n_zero", "/v1/chat/completions", j({**GOOD, "n": 0}), 400, "invalid_value", "n"),
    ("too_many_stops", "/v1/chat/completions", j({**GOOD, "stop": ["a", "b", "c", "d", "e"]}), 400, "invalid_value",
     "stop"),
    ("stream_options_not_bool", "/v1/chat/completions",
     j({**GOOD, "stream": True, "stream_options": {"include_usage": "yes"}}), 400, "invalid_value",
     "stream_options.include_usage"),
    ("prompt_over_weak_context", "/v1/chat/completions",
     j({"model": "router-random-1", "messages": [{"role": "user", "content": "word " * 2000}]}), 400,
     "context_length_exceeded", "messages"),
    ("route_no_input", "/v1/route", j({"model": "router-mf"}), 400, "invalid_request", None),
    ("route_empty_prompt", "/v1/route", j({"model": "router-mf", "prompt": "  "}), 400, "invalid_value", "prompt"),
    ("wrong_method", "GET /v1/chat/completions", {}, 405, "method_not_allowed", None),
    ("unknown_path", "/v1/completions", j(GOOD), 404, "not_found", None),
]


def _send(http, path, kwargs):
    if path.startswith("GET "):
        return http.get(path[4:])
    return http.post(path, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clean_openai_error_and_server_stays_up(http, case):
    name, path, kwargs, status, code, param = case
    r = _send(http, path, kwargs)
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    err = body["error"]
    assert err["type"] == "invalid_request_error", err
    if code is not None:
        assert err["code"] == code, err
    if param is None:
        assert err["param"] is None, err
    else:
        assert err["param"] is not None and err["param"].startswith(param), err
    assert 10 < len(err["message"]) < 600, err  # names the value and the fix, bounded
    assert INGRESS_KEY not in r.text and STRONG_KEY not in r.text
    # the server is fine right after
    good = http.post("/v1/chat/completions", json=GOOD)
    assert good.status_code == 200 and good.json()["model"] == WEAK_NAME, good.text[:300]
    assert http.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize("text", [
    "¿Qué es 2 + 2? 日本語 한국어 עברית العربية 🚀👩‍👩‍👧",
    "null\x00byte, bell\x07, escape\x1b[31m, vertical\x0b, nel\x85, line\u2028sep, bidi\u202eoverride",
    "\ufeffzero\u200bwidth\u200djoiner",
    "😀" * 50,
])
@pytest.mark.parametrize("model", ["router-random-1", "router-random-0", "router-sw_ranking-0.5", "router-mf-0.5",
                                   "router-mf_static-0.8"])  # (scored in the ingress)
def test_unicode_and_control_characters_are_served(http, text, model):
    r = http.post("/v1/chat/completions",
                  json={"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 2})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["model"] in (WEAK_NAME, STRONG_NAME)


def test_prompt_over_embedder_context_is_truncated_not_rejected(http):
    """sw_ranking's MiniLM reads 256 word pieces: a longer prompt routes on its start (documented)."""
    long = "Explain the proof of Fermat's last theorem in detail. " + "more words here " * 3000
    head = "Explain the proof of Fermat's last theorem in detail. " + "more words here " * 200
    r1 = http.post("/v1/route", json={"model": "router-sw_ranking-0.5", "prompt": long})
    r2 = http.post("/v1/route", json={"model": "router-sw_ranking-0.5", "prompt": head})
    assert r1.status_code == 200 and r2.status_code == 200, r1.text[:300]
    assert r1.json()["p_strong"] == pytest.approx(r2.json()["p_strong"], abs=1e-4)
    # the strong route has no local context limit: the provider decides
    r = http.post("/v1/chat/completions", json={"model": "router-mf-0", "messages": [{"role": "user", "content": long}]})
    assert r.status_code == 200 and r.json()["model"] == STRONG_NAME


# --- property-based: generated bodies against the live app -----------------------------------------

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**13, 10**13), st.floats(allow_nan=False),
                    st.text(max_size=20))
_content = st.one_of(st.text(max_size=40), _scalar,
                     st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"])},
                                                    optional={"text": st.one_of(st.text(max_size=20), _scalar)}),
                              max_size=3))
_message = st.fixed_dictionaries({}, optional={
    "role": st.one_of(st.sampled_from(["user", "system", "assistant", "tool", "developer"]), _scalar),
    "content": _content})
_model = st.one_of(st.sampled_from(["router-random-1", "router-random-0", "router-mf-0.5", "router-sw_ranking",
                                    "router", WEAK_NAME, "router-mf-strong0.5"]),
                   st.from_regex(r"router-[a-z_]{0,8}(-[-a-z0-9.]{0,8})?", fullmatch=True), _scalar)
_body = st.fixed_dictionaries({}, optional={
    "model": _model,
    "messages": st.one_of(st.lists(_message, max_size=3), _scalar),
    "max_tokens": st.one_of(st.integers(-5, 4), _scalar),
    "temperature": st.one_of(st.floats(-1, 3, allow_nan=False), _scalar),
    "stream": st.one_of(st.booleans(), _scalar),
    "n": st.one_of(st.integers(-1, 2), _scalar),
    "stop": st.one_of(st.text(max_size=5), st.lists(st.text(max_size=3), max_size=6), _scalar),
})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=_body)
def test_generated_requests_get_200_or_clean_4xx(http, body):
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code in (200, 400), (body, r.status_code, r.text[:300])
    if r.status_code == 400:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
        assert err["param"] is None or err["param"].split(".")[0] in {*body, "model", "messages"}, (body, err)
    elif body.get("stream") is True:
        assert r.text.rstrip().endswith("data: [DONE]")
    else:
        assert r.json()["model"] in (WEAK_NAME, STRONG_NAME)
