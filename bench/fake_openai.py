"""A minimal OpenAI-compatible chat server on 127.0.0.1 for benchmarks that must not call a real model
(``rayroute bench-budget``): it answers every ``POST /v1/chat/completions`` at once with a fixed
reply and a token usage that grows with the prompt (about 4 characters a token), so that dollar
figures computed from usage behave like real ones. Streaming is not served.

    with FakeOpenAI(name="fake-strong") as srv:   # srv.base_url == "http://127.0.0.1:<port>/v1"
        ...
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from fastapi import FastAPI, Request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def completion(model: str, body: dict[str, Any], reply: str, completion_tokens: int) -> dict[str, Any]:
    chars = sum(len(m.get("content") or "") if isinstance(m.get("content"), str) else 0
                for m in body.get("messages") or [])
    prompt_tokens = max(1, chars // 4)
    out = min(completion_tokens, int(body.get("max_tokens") or body.get("max_completion_tokens") or completion_tokens))
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out, "total_tokens": prompt_tokens + out}}


class FakeOpenAI:
    """The server runs uvicorn in a daemon thread; ``requests`` counts what it answered."""

    def __init__(self, name: str, completion_tokens: int = 200, reply: str | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.completion_tokens = completion_tokens
        self.reply = reply or f"{name} answers"
        self.requests = 0
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _app(self) -> Any:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        srv = self

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            srv.requests += 1
            body = await request.json()
            return completion(srv.name, body, srv.reply, srv.completion_tokens)

        return app

    def start(self, timeout_s: float = 30.0) -> "FakeOpenAI":
        import uvicorn

        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        t0 = time.monotonic()
        while not self._server.started:
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"fake OpenAI server {self.name} did not start in {timeout_s}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
