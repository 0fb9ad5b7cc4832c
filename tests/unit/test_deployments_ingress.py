"""The ingress's fallback policy and stream error handling, in-process (ASGI, no Ray, no sockets).

The handles are the one faked boundary: small objects with Serve's handle call shape
(``h.method.remote(...)`` awaitable, ``h.options(stream=True).method.remote(...)`` async-iterable).
Requests use the strong/weak model names directly, so no router replica is involved.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from deployments import errors as E
from deployments.chat import ServedModels
from deployments.config import IngressArgs
from deployments.ingress import Ingress
from deployments.metrics import ServingMetrics
from tests.fakes import FakeHandle

USER = [{"role": "user", "content": "hi"}]


def _completion(model, text):
    return {"id": "c", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def _chunk(model, text):
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": {"content": text}}]}


class Weak:
    async def chat(self, req):
        return _completion("w", "weak answer")

    async def chat_stream(self, req):
        for t in ("weak", " answer"):
            yield _chunk("w", t)


class Strong:
    def __init__(self, error=None, break_after=None, configured=True):
        self.error, self.break_after, self.configured, self.calls = error, break_after, configured, 0

    def info(self):
        return {"configured": self.configured, "api_key_env": "SOME_KEY"}

    async def chat(self, req):
        self.calls += 1
        if self.error:
            raise self.error
        return _completion("s", "strong answer")

    async def chat_stream(self, req):
        self.calls += 1
        if self.error and self.break_after is None:
            raise self.error
        for i, t in enumerate(("strong", " answer", " more")):
            if self.break_after is not None and i == self.break_after:
                raise self.error
            yield _chunk("s", t)


def _app(strong, fallback="weak"):
    ing = Ingress({}, FakeHandle(Weak()), FakeHandle(strong),
                  models=ServedModels(strong="strong", weak="weak", default_router="none", fallback=fallback,
                                      prices_usd_per_1m={"strong": (1e6, 1e6)}),
                  args=IngressArgs(api_keys_env=None), metrics=ServingMetrics(export=False))
    return ing, ing.build_asgi_app()


def _post(app, body):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.post("/v1/chat/completions", json=body)

    return asyncio.run(go())


def _sse(text):
    return [ln[len("data: "):] for ln in text.splitlines() if ln.startswith("data: ")]


def test_strong_ok_counts_cost():
    ing, app = _app(Strong())
    r = _post(app, {"model": "strong", "messages": USER})
    assert r.status_code == 200 and r.json()["model"] == "strong" and r.headers["x-routed-model"] == "strong"
    assert ing.metrics.snapshot()["estimated_cost_usd"] == {"strong": 5.0}


def test_fallback_to_weak_is_counted_and_flagged():
    ing, app = _app(Strong(E.UpstreamError("HTTP 500", code="upstream_http_500")))
    r = _post(app, {"model": "strong", "messages": USER})
    assert r.status_code == 200 and r.json()["model"] == "weak"
    assert r.headers["x-rayroute-fallback"] == "strong_failed:upstream_http_500"
    snap = ing.metrics.snapshot()
    assert snap["fallbacks_total"] == 1 and snap["fallbacks"][0]["to_model"] == "weak"


@pytest.mark.parametrize(
    "error, status, code",
    [
        (E.UpstreamError("HTTP 500", code="upstream_http_500"), 502, "upstream_http_500"),
        (E.UpstreamTimeoutError("slow"), 504, "upstream_timeout"),
        (E.UpstreamUnavailableError("no key", code="strong_model_no_api_key"), 502, "strong_model_no_api_key"),
    ],
)
def test_error_policy_returns_openai_shaped_5xx(error, status, code):
    _, app = _app(Strong(error), fallback="error")
    r = _post(app, {"model": "strong", "messages": USER})
    assert r.status_code == status
    assert r.json()["error"]["code"] == code and r.json()["error"]["type"] == "upstream_error"


def test_client_errors_from_provider_do_not_fall_back():
    _, app = _app(Strong(E.UpstreamRejectedError("bad stop")))
    r = _post(app, {"model": "strong", "messages": USER})
    assert r.status_code == 400


def test_unconfigured_strong_model_is_skipped_not_called():
    strong = Strong(configured=False)
    ing, app = _app(strong)
    for _ in range(2):
        r = _post(app, {"model": "strong", "messages": USER})
        assert r.json()["model"] == "weak"
        assert r.headers["x-rayroute-fallback"] == "strong_failed:strong_model_no_api_key"
    assert strong.calls == 0
    _, app = _app(Strong(configured=False), fallback="error")
    r = _post(app, {"model": "strong", "messages": USER})
    assert r.status_code == 502 and "SOME_KEY" in r.json()["error"]["message"]


def test_stream_falls_back_before_first_chunk():
    _, app = _app(Strong(E.UpstreamUnavailableError("refused", code="upstream_connection_error")))
    r = _post(app, {"model": "strong", "messages": USER, "stream": True})
    events = _sse(r.text)
    assert r.status_code == 200 and events[-1] == "[DONE]"
    assert {json.loads(e)["model"] for e in events[:-1]} == {"weak"}


def test_stream_broken_mid_way_ends_with_error_event():
    _, app = _app(Strong(E.UpstreamError("dropped"), break_after=2))
    r = _post(app, {"model": "strong", "messages": USER, "stream": True})
    events = _sse(r.text)
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["type"] == "upstream_error"
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:2]] == ["strong", " answer"]


# --- pass-through and capability routing (issue 17) ------------------------------------------------

from deployments.protocol import RouterVerdict  # noqa: E402

IMAGE_TURN = [{"role": "system", "content": "sys"},
              {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                           {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
              {"role": "assistant", "content": None, "tool_calls": [
                  {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
              {"role": "tool", "tool_call_id": "c1", "content": "a tool result"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


class WeakRouter:
    """Always says weak; keeps what it was asked to route."""

    def __init__(self):
        self.seen = []

    async def route(self, messages, threshold, strong_fraction):
        self.seen.append(messages)
        return RouterVerdict(p_strong=0.1, threshold=0.5, strong=False)


class RecordingWeak(Weak):
    def __init__(self, error=None):
        self.error, self.payloads = error, []

    async def chat(self, req):
        self.payloads.append(req)
        if self.error:
            raise self.error
        return await super().chat(req)


def _capable_app(strong, weak=None, lacks=("images", "audio", "tools"), strong_for=("images", "audio", "tools")):
    router, weak = WeakRouter(), weak or RecordingWeak()
    ing = Ingress({"r": FakeHandle(router)}, FakeHandle(weak), FakeHandle(strong),
                  models=ServedModels(strong="strong", weak="weak", default_router="r",
                                      weak_lacks=frozenset(lacks), route_strong_for=frozenset(strong_for)),
                  args=IngressArgs(api_keys_env=None), metrics=ServingMetrics(export=False))
    return ing, ing.build_asgi_app(), router, weak


def test_the_body_reaches_the_backend_as_sent_and_the_router_reads_user_text_only():
    _, app, router, weak = _capable_app(Strong(), lacks=())
    body = {"model": "router-r-0.5", "messages": IMAGE_TURN, "tools": TOOLS, "logprobs": True, "top_logprobs": 2,
            "seed": 1, "metadata": {"a": "b"}, "top_k": 4}
    r = _post(app, body)
    assert r.status_code == 200 and r.json()["model"] == "weak"
    assert weak.payloads == [{**body, "model": "weak"}]
    assert router.seen == [[{"role": "user", "content": "what is this?"}]]  # no system prompt, tool result, image


def test_a_feature_the_weak_model_lacks_sends_a_routed_request_strong_counted_with_a_header():
    ing, app, _, weak = _capable_app(Strong())
    r = _post(app, {"model": "router-r-0.5", "messages": IMAGE_TURN, "tools": TOOLS})
    assert r.status_code == 200 and r.json()["model"] == "strong" and not weak.payloads
    assert r.headers["x-rayroute-capability"] == "images,tools" and r.headers["x-router-p-strong"] == "0.1"
    assert ing.metrics.snapshot()["capability_routes"] == [{"router": "r", "feature": "images", "count": 1},
                                                            {"router": "r", "feature": "tools", "count": 1}]


def test_a_request_sent_strong_for_a_feature_never_falls_back_to_the_weak_model():
    _, app, _, weak = _capable_app(Strong(E.UpstreamError("HTTP 500", code="upstream_http_500")))
    r = _post(app, {"model": "router-r-0.5", "messages": IMAGE_TURN})
    assert r.status_code == 502 and not weak.payloads


@pytest.mark.parametrize("body, param", [
    ({"model": "weak", "messages": IMAGE_TURN}, "messages"),            # the client named the weak model
    ({"model": "router-r-0.5", "messages": USER, "tools": TOOLS}, "tools"),  # tools not in route_strong_for
])
def test_a_lacking_feature_not_sent_strong_is_a_400_naming_feature_and_model(body, param):
    _, app, _, weak = _capable_app(Strong(), strong_for=("images",))
    r = _post(app, body)
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "unsupported_feature" and err["param"] == param
    assert "'weak'" in err["message"] and not weak.payloads


@pytest.mark.parametrize("strong_for, status, model", [(("context",), 200, "strong"), ((), 400, None)])
def test_a_conversation_over_the_weak_window_goes_strong_when_configured(strong_for, status, model):
    too_long = E.ContextLengthError("the weak model rejected the request: maximum context length", param="messages")
    _, app, _, weak = _capable_app(Strong(), weak=RecordingWeak(too_long), strong_for=strong_for)
    r = _post(app, {"model": "router-r-0.5", "messages": USER})
    assert r.status_code == status and len(weak.payloads) == 1
    if model:
        assert r.json()["model"] == model and r.headers["x-rayroute-capability"] == "context"
    else:
        assert r.json()["error"]["code"] == "context_length_exceeded"
