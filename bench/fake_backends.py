"""Local OpenAI-compatible fakes for the learning demonstration and its tests: a strong and a weak
model that answer each benchmark question right or wrong as the real model did (the golden
outcome), and a judge that speaks the real pairwise judge protocol (``routers.learning.judge``).

- ``GoldenModelServer(outcomes)``: ``outcomes`` maps a question (the last user message) to whether
  this model answered it correctly. The answer is a canned text tagged ``[correct]`` or
  ``[wrong]``; a question it does not know gets ``[unknown]`` (judged a tie).
- ``JudgeServer(noise)``: reads the question and the two answers out of the judge prompt, prefers
  the ``[correct]`` one (a tie when both or neither are), and flips its verdict with probability
  ``noise`` (A <-> B; a tie becomes A or B at random): a judge that errs. ``garbage_rate`` answers
  without a verdict, ``fail_rate`` with HTTP 500 (failures the collector must survive).

Both run uvicorn in a thread on 127.0.0.1, return usage (≈ 4 characters a token) and count calls.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from routers.learning.judge import TEMPLATE

CORRECT, WRONG, UNKNOWN = "[correct]", "[wrong]", "[unknown]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _completion(model: str, content: str, prompt_tokens: int) -> dict[str, Any]:
    return {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": _tokens(content),
                      "total_tokens": prompt_tokens + _tokens(content)}}


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                c = "\n".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c or ""
    return ""


class _Server:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.calls = 0
        self._server = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _app(self):
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            with self._lock:
                self.calls += 1
                status, out = self.reply(body)
            return JSONResponse(out, status_code=status)

        return app

    def start(self, timeout_s: float = 20.0):
        import uvicorn

        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class GoldenModelServer(_Server):
    """A model that is right exactly where the real one was (module docstring)."""

    def __init__(self, name: str, outcomes: dict[str, bool], port: int | None = None) -> None:
        super().__init__(port)
        self.name = name
        self.outcomes = outcomes

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        q = _last_user(body.get("messages"))
        ok = self.outcomes.get(q)
        tag = UNKNOWN if ok is None else (CORRECT if ok else WRONG)
        return 200, _completion(body.get("model", self.name), f"{tag} {self.name} answers.", _tokens(q))


_ANSWER = {k: re.compile(re.escape(f"[The Start of Assistant {k}'s Answer]\n") + r"(.*?)"
                         + re.escape(f"\n[The End of Assistant {k}'s Answer]"), re.S) for k in "AB"}
assert "[The Start of Assistant A's Answer]" in TEMPLATE


class JudgeServer(_Server):
    """The pairwise judge, right by the golden outcomes, wrong with probability ``noise``."""

    def __init__(self, noise: float = 0.0, seed: int = 0, garbage_rate: float = 0.0, fail_rate: float = 0.0,
                 port: int | None = None) -> None:
        super().__init__(port)
        self.noise = noise
        self.garbage_rate = garbage_rate
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)

    def verdict(self, judge_prompt: str) -> str:
        a, b = (_ANSWER[k].search(judge_prompt) for k in "AB")
        good_a = a is not None and a.group(1).startswith(CORRECT)
        good_b = b is not None and b.group(1).startswith(CORRECT)
        v = "C" if good_a == good_b else ("A" if good_a else "B")
        if self.rng.random() < self.noise:
            v = {"A": "B", "B": "A"}.get(v) or self.rng.choice("AB")
        return v

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = self.rng.random()
        if r < self.fail_rate:
            return 500, {"error": {"message": "judge overloaded", "type": "server_error", "param": None, "code": None}}
        prompt = _last_user(body.get("messages"))
        if r < self.fail_rate + self.garbage_rate:
            text = "Both answers have merit; I cannot decide."
        else:
            text = f"Comparing the two answers: one is right. [[{self.verdict(prompt)}]]"
        return 200, _completion(body.get("model", "judge"), text, _tokens(prompt))
