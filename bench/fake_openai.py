"""Local OpenAI-compatible chat servers for benchmarks that must not call a real model, in one
place: ``FakeChatServer`` runs uvicorn on 127.0.0.1 in a daemon thread and answers
``POST /v1/chat/completions`` with whatever its ``reply(body)`` returns; usage grows with the text
(about 4 characters a token), so dollar figures computed from usage behave like real ones.
A request with ``stream: true`` gets the same answer as OpenAI's SSE chunks (``sse``).

- ``FakeOpenAI``: a fixed reply, at once (``rayroute bench-budget``).
- ``bench.fake_backends``: models right or wrong by golden outcomes, and a judge (the learning
  demonstration).

    with FakeOpenAI(name="fake-strong") as srv:   # srv.base_url == "http://127.0.0.1:<port>/v1"
        ...
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from bench.loopback import LoopbackServer, free_port


def tokens(text: str) -> int:
    """About 4 characters a token."""
    return max(1, len(text) // 4)


def last_user(messages: list[dict[str, Any]] | None) -> str:
    """The text of the last user message (content parts: their text joined)."""
    for m in reversed(messages or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                c = "\n".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c or ""
    return ""


def completion(model: str, content: str, prompt_tokens: int, completion_tokens: int | None = None) -> dict[str, Any]:
    """A chat.completion body in the OpenAI shape."""
    out = tokens(content) if completion_tokens is None else completion_tokens
    return {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out, "total_tokens": prompt_tokens + out}}


def sse(answer: dict[str, Any], include_usage: bool = False):
    """A chat.completion body as OpenAI's stream: a role chunk, one chunk per word of the content, a
    finish chunk, the usage chunk if asked for, ``data: [DONE]``."""
    head = {"id": answer["id"], "object": "chat.completion.chunk", "created": answer["created"],
            "model": answer["model"]}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"

    async def events():
        yield chunk({"role": "assistant", "content": ""})
        words = (answer["choices"][0]["message"].get("content") or "").split(" ")
        for i, word in enumerate(words):
            yield chunk({"content": word if i == 0 else " " + word})
        yield chunk({}, finish=answer["choices"][0].get("finish_reason") or "stop")
        if include_usage:
            yield "data: " + json.dumps({**head, "choices": [], "usage": answer["usage"]}) + "\n\n"
        yield "data: [DONE]\n\n"

    return events()


class FakeChatServer:
    """The server; subclasses say what each request gets (``reply``). ``calls`` counts requests."""

    def __init__(self, name: str = "fake", port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.calls = 0
        self._loopback = LoopbackServer(f"fake OpenAI server {name}", self.port)
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _app(self) -> Any:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            with self._lock:
                self.calls += 1
                status, out = self.reply(body)
            if body.get("stream") and status == 200:
                return StreamingResponse(sse(out, (body.get("stream_options") or {}).get("include_usage")),
                                         media_type="text/event-stream")
            return JSONResponse(out, status_code=status)

        return app

    def start(self, timeout_s: float = 30.0) -> "FakeChatServer":
        self._loopback.start(self._app(), timeout_s)
        return self

    def stop(self) -> None:
        self._loopback.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class FakeOpenAI(FakeChatServer):
    """Answers every request at once with a fixed reply of ``completion_tokens`` tokens (fewer if
    the request's ``max_tokens`` says so)."""

    def __init__(self, name: str, completion_tokens: int = 200, reply: str | None = None) -> None:
        super().__init__(name)
        self.completion_tokens = completion_tokens
        self.text = reply or f"{name} answers"

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chars = sum(len(m.get("content")) for m in body.get("messages") or [] if isinstance(m.get("content"), str))
        cap = body.get("max_tokens") or body.get("max_completion_tokens") or self.completion_tokens
        return 200, completion(self.name, self.text, max(1, chars // 4), min(self.completion_tokens, int(cap)))
