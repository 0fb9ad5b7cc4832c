"""The strong replica hands the client's body to the SDK unchanged: OpenAI's fields as ``create()``
keywords, a provider's own fields in ``extra_body``, ``model`` and ``stream`` its own."""

from __future__ import annotations

import asyncio

import pytest

from deployments.strong_model import StrongModel

BODY = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "stream": False,
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required", "logprobs": True,
        "top_logprobs": 2, "metadata": {"a": "b"}, "stream_options": {"include_usage": True}, "top_k": 3}


def _strong(monkeypatch, seen: list) -> StrongModel:
    monkeypatch.setenv("RR_PT_KEY", "k")

    class Completions:
        async def create(self, **kwargs):
            seen.append(kwargs)

            class Resp:
                def model_dump(self, exclude_none):
                    return {"object": "chat.completion"}

            return Resp()

    class Client:
        chat = type("Chat", (), {"completions": Completions()})()

    return StrongModel("http://127.0.0.1:9/v1", "strong-x", "RR_PT_KEY", client_factory=lambda *a: Client())


def test_known_fields_as_keywords_and_the_rest_as_extra_body(monkeypatch):
    seen: list = []
    asyncio.run(_strong(monkeypatch, seen).chat(BODY))
    kwargs = seen[0]
    assert kwargs.pop("extra_body") == {"top_k": 3}
    expected = {k: v for k, v in BODY.items() if k not in ("top_k", "stream_options")}
    assert kwargs == {**expected, "model": "strong-x", "stream": False}  # no stream_options without a stream


def _rejecting(monkeypatch, status: int, error: dict) -> StrongModel:
    """A client whose provider answers ``status`` with ``{"error": error}``, as the SDK raises it."""
    import httpx
    import openai

    monkeypatch.setenv("RR_PT_KEY", "k")
    req = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    resp = httpx.Response(status, request=req, json={"error": error})
    exc = openai.BadRequestError(error["message"], response=resp, body={"error": error})

    class Completions:
        async def create(self, **kwargs):
            raise exc

    class Client:
        chat = type("Chat", (), {"completions": Completions()})()

    return StrongModel("http://127.0.0.1:9/v1", "remote-x", "RR_PT_KEY", client_factory=lambda *a: Client())


@pytest.mark.parametrize("error", [
    # OpenAI's words
    {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in "
                "130000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"},
    # vLLM's OpenAI server (a remote weak model or N-way backend): the status in `code`
    {"message": "This model's maximum context length is 512 tokens. However, your prompt contains 4000 characters",
     "type": "BadRequestError", "param": "input_text", "code": 400},
])
def test_a_provider_saying_the_conversation_is_too_long_is_a_context_length_error(monkeypatch, error):
    """Another model with a larger window may serve it: the two-model context rule (route_strong_for)
    and N-way fallback both need it told apart from other 400s."""
    from deployments.errors import ContextLengthError, UpstreamRejectedError, classify

    strong = _rejecting(monkeypatch, 400, error)
    with pytest.raises(ContextLengthError) as ei:
        asyncio.run(strong.chat({"messages": [{"role": "user", "content": "x"}]}))
    status, body = classify(ei.value)
    assert status == 400 and body["error"]["code"] == "context_length_exceeded" and body["error"]["param"] == "messages"
    assert "'remote-x'" in body["error"]["message"] and "maximum context length" in body["error"]["message"]
    assert strong.info()["cooldowns"] == 0 and strong.attempts == 1  # the client's fault: no retry, no cooldown
    other = _rejecting(monkeypatch, 400, {"message": "'stop' must be a list", "param": "stop", "code": None})
    with pytest.raises(UpstreamRejectedError):
        asyncio.run(other.chat({"messages": [{"role": "user", "content": "x"}]}))
