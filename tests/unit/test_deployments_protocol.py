"""Model-name grammar, request validation, the error table, AppArgs, and the ingress's
pre-routing checks (auth, body limit, JSON) through its ASGI app in-process — no Ray, no network."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from pydantic import ValidationError

from deployments import errors as E
from deployments.config import AppArgs
from deployments.protocol import ChatCompletionRequest, ModelSelection, RouteRequest, parse_model_name
from routers.errors import CheckpointError, ConfigError
from tests.fakes import CHAT_FIELDS
from routers.errors import UnknownRouterError

# --- model names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("router-mf-0.11593", ModelSelection(router="mf", threshold=0.11593)),
        ("router-mf-0", ModelSelection(router="mf", threshold=0.0)),
        ("router-mf-1", ModelSelection(router="mf", threshold=1.0)),
        ("router-mf-1.0", ModelSelection(router="mf", threshold=1.0)),
        ("router-sw_ranking", ModelSelection(router="sw_ranking")),
        ("router-mf-strong0.3", ModelSelection(router="mf", strong_fraction=0.3)),
        ("router-mf-strong1", ModelSelection(router="mf", strong_fraction=1.0)),
        ("gpt-4o", ModelSelection(direct_model="gpt-4o")),
    ],
)
def test_parse_model_name_ok(name, expected):
    assert parse_model_name(name, direct_models=("gpt-4o", "weak-x")) == expected


@pytest.mark.parametrize(
    "name, exc, needle",
    [
        ("router-mf-abc", E.ModelNameError, "'abc'"),
        ("router-mf-1.5", E.ThresholdError, "'1.5'"),
        ("router-mf--0.2", E.ModelNameError, "router-mf--0.2"),
        ("router-mf-nan", E.ThresholdError, "'nan'"),
        ("router-mf-inf", E.ThresholdError, "'inf'"),
        ("router-mf-strong2", E.ThresholdError, "'2'"),
        ("router-mf-strongx", E.ModelNameError, "'x'"),
        ("router-", E.ModelNameError, "malformed"),
        ("router-a-0.1-2", E.ModelNameError, "malformed"),
        ("gpt-5", E.ModelNameError, "'gpt-5'"),
        ("", E.ModelNameError, "non-empty"),
        ("router-" + "x" * 300, E.ModelNameError, "longer"),
    ],
)
def test_parse_model_name_errors_name_the_value(name, exc, needle):
    with pytest.raises(exc) as ei:
        parse_model_name(name, direct_models=("gpt-4o",))
    assert needle in str(ei.value)
    status, body = E.classify(ei.value)
    assert status == 400 and body["error"]["param"] == "model"
    assert body["error"]["type"] == "invalid_request_error"


# --- requests --------------------------------------------------------------------------------------

USER = [{"role": "user", "content": "hi"}]


#: every pass-through field of issue 17, as a client sends them, and a backend's own field
FULL = {"model": "router-mf-0.2", **CHAT_FIELDS, "stream": True, "stream_options": {"include_usage": True},
        "top_k": 3}  # vLLM's, not OpenAI's: passed through unchecked


def test_backend_payload_is_the_body_as_sent_with_the_backend_model():
    req = ChatCompletionRequest.model_validate(FULL)
    assert req.backend_payload("weak") == {**FULL, "model": "weak"}
    assert req.body() is not None and req.stream is True


def test_routing_text_of_a_tool_conversation_is_the_user_turns_only():
    req = ChatCompletionRequest.model_validate(FULL)
    assert req.routing_messages() == [{"role": "user", "content": "look"}, {"role": "user", "content": "and tomorrow?"}]


@pytest.mark.parametrize("patch, param", [
    ({"response_format": {"type": "banana"}}, "response_format"),
    ({"logprobs": "yes"}, "logprobs"),
    ({"tools": "nope"}, "tools"),
    ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools.0.function.name"),
    ({"top_logprobs": "2"}, "top_logprobs"),
    ({"tool_choice": "banana"}, "tool_choice"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"seed": 1.5}, "seed"),
    ({"metadata": {"k": 1}}, "metadata.k"),
    ({"user": 5}, "user"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]}, "messages.1"),
])
def test_a_known_field_of_the_wrong_type_is_a_400_naming_it(patch, param):
    with pytest.raises(ValidationError) as ei:
        ChatCompletionRequest.model_validate({**FULL, **patch})
    err = E.from_validation_error(ei.value)
    assert err.param is not None and err.param.startswith(param), err.param
    assert E.classify(err)[0] == 400


def test_content_parts_text_only_is_routable():
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]}]})
    assert req.messages[0].text() == "a"


@pytest.mark.parametrize(
    "patch, param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": "system", "content": "only system"}]}, None),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, None),
        ({"temperature": 3}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"n": 100}, "n"),
        ({"stream": "true"}, "stream"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_request_validation_errors(patch, param):
    body = {"model": "router-mf", "messages": USER, **patch}
    with pytest.raises(ValidationError) as ei:
        ChatCompletionRequest.model_validate(body)
    err = E.from_validation_error(ei.value)
    status, out = E.classify(err)
    assert status == 400
    if param is not None:
        assert out["error"]["param"] == param
    assert "got" in out["error"]["message"]


def test_route_request_needs_input():
    with pytest.raises(ValidationError):
        RouteRequest.model_validate({"model": "router-mf"})
    assert RouteRequest.model_validate({"model": "router-mf", "prompt": "x"}).prompt == "x"


# --- the error table -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, status, etype",
    [
        (E.AuthenticationError("no"), 401, "authentication_error"),
        (E.PayloadTooLargeError("big"), 413, "invalid_request_error"),
        (E.UnsupportedMediaTypeError("xml"), 415, "invalid_request_error"),
        (E.UpstreamError("down"), 502, "upstream_error"),
        (E.UpstreamUnavailableError("no key", code="strong_model_no_api_key"), 502, "upstream_error"),
        (E.UpstreamTimeoutError("slow"), 504, "upstream_error"),
        (E.UpstreamRejectedError("bad"), 400, "invalid_request_error"),
        (E.BackendUnavailableError("gone"), 503, "server_error"),
        (UnknownRouterError("unknown router 'zz'"), 400, "invalid_request_error"),
        (ConfigError("threshold must be in [0, 1], got 2"), 400, "invalid_request_error"),
        (CheckpointError("missing"), 503, "server_error"),
        (RuntimeError("secret internals"), 500, "server_error"),
    ],
)
def test_error_table(exc, status, etype):
    got_status, body = E.classify(exc)
    assert got_status == status
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == etype
    if isinstance(exc, RuntimeError):
        assert "secret internals" not in body["error"]["message"]


def test_one_unknown_router_error_names_the_model_param():
    status, body = E.classify(UnknownRouterError("unknown router 'zz' in model 'router-zz'"))
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "unknown_router", "model")
    assert E.UnknownRouterError is UnknownRouterError  # one class, the library's


def test_errors_survive_pickling_and_ray_style_wrapping():
    import pickle

    err = pickle.loads(pickle.dumps(E.ThresholdError("bad 2", param="model")))
    assert (err.message, err.param, err.code) == ("bad 2", "model", "threshold_out_of_range")

    class Wrapper(Exception):
        def __init__(self, cause):
            self.cause = cause

    assert E.classify(Wrapper(err))[0] == 400


# --- AppArgs ---------------------------------------------------------------------------------------


def test_app_args_defaults_and_forbid_extra():
    a = AppArgs()
    assert a.default_router == "random" and a.weak_model.served_model_name == "weak-tiny-llama"
    with pytest.raises(ValidationError, match="extra"):
        AppArgs.model_validate({"routerz": []})


@pytest.mark.parametrize(
    "args, needle",
    [
        ({"routers": [{"alias": "mf", "default_threshold": 1.5}]}, "default_threshold"),
        ({"routers": [{"alias": "Bad-Name"}]}, "alias"),
        ({"routers": [{"alias": "a"}, {"alias": "a"}]}, "unique"),
        ({"default_router": "zz"}, "default_router"),
        ({"strong_model": {"fallback": "maybe"}}, "fallback"),
        ({"deployments": {"router": {"num_replicas": 1, "autoscaling_config": {}}}}, "either"),
        ({"deployments": {"weak_model": {"ray_actor_options": {"num_gpus": -1}}}}, "num_gpus"),
        ({"ingress": {"max_body_bytes": 10}}, "max_body_bytes"),
    ],
)
def test_app_args_rejects(args, needle):
    with pytest.raises(ValidationError, match=needle):
        AppArgs.model_validate(args)


def test_preflight_fails_fast_on_missing_checkpoint(tmp_path, monkeypatch):
    from deployments.app import preflight

    monkeypatch.setenv("RAYROUTE_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CheckpointError, match="mf"):
        preflight(AppArgs.model_validate({"routers": [{"alias": "mf"}]}))
    with pytest.raises(UnknownRouterError, match="nope"):
        preflight(AppArgs.model_validate({"routers": [{"alias": "x", "source": "nope"}]}))
    preflight(AppArgs())  # random needs no checkpoint
    # a checkpoint named by its directory in the checkpoint dir (like mf_static) passes
    from routers.models.random import RandomRouter

    RandomRouter(seed=1).save(tmp_path / "my_router")
    preflight(AppArgs.model_validate({"routers": [{"alias": "mine", "source": "my_router"}]}))
    missing = str(tmp_path / "gone")
    with pytest.raises(CheckpointError, match="gone.*does not exist"):
        preflight(AppArgs.model_validate({"routers": [{"alias": "x", "source": missing}]}))


# --- ingress checks before routing (in-process ASGI, no sockets) -----------------------------------


def _ingress(monkeypatch, keys="k1,k2"):
    from deployments.chat import ServedModels
    from deployments.config import IngressArgs
    from deployments.ingress import Ingress
    from deployments.metrics import ServingMetrics

    monkeypatch.setenv("RR_UNIT_KEYS", keys)
    return Ingress({"random": object()}, object(), object(),
                   models=ServedModels(strong="strong", weak="weak", default_router="random"),
                   args=IngressArgs(api_keys_env="RR_UNIT_KEYS", max_body_bytes=2048),
                   metrics=ServingMetrics(export=False))


def _post(app, path, **kwargs):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.post(path, **kwargs)

    return asyncio.run(go())


def test_ingress_auth_size_and_json(monkeypatch):
    ing = _ingress(monkeypatch)
    app = ing.build_asgi_app()
    body = {"model": "router-random-0.5", "messages": USER}
    r = _post(app, "/v1/chat/completions", json=body)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = _post(app, "/v1/chat/completions", json=body, headers={"authorization": "Bearer k3"})
    assert r.status_code == 401 and "k1" not in r.text
    ok = {"authorization": "Bearer k2"}
    r = _post(app, "/v1/chat/completions", json={"model": "router-random", "messages": [
        {"role": "user", "content": "x" * 5000}]}, headers=ok)
    assert r.status_code == 413
    r = _post(app, "/v1/chat/completions", content=b"[1, 2", headers={**ok, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = _post(app, "/v1/chat/completions", content=b"<xml/>", headers={**ok, "content-type": "text/xml"})
    assert r.status_code == 415
    r = _post(app, "/v1/chat/completions", json={**body, "model": "router-zz-0.1"}, headers=ok)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_router"
    assert "router-random" in r.json()["error"]["message"]
    r = _post(app, "/v1/chat/completions", json={**body, "model": "router-random-7"}, headers=ok)
    assert r.status_code == 400 and "'7'" in r.json()["error"]["message"]
    r = _post(app, "/v1/nothing", json={}, headers=ok)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert ing.metrics.snapshot()["errors"]


def test_ingress_open_when_no_keys(monkeypatch):
    ing = _ingress(monkeypatch, keys="")
    r = _post(ing.build_asgi_app(), "/v1/chat/completions", json={"model": "router-zz", "messages": USER})
    assert r.status_code == 400  # reached model parsing: no auth required
