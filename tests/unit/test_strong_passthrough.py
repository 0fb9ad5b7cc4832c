"""The strong replica hands the client's body to the SDK unchanged: OpenAI's fields as ``create()``
keywords, a provider's own fields in ``extra_body``, ``model`` and ``stream`` its own."""

from __future__ import annotations

import asyncio

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
