"""A small, real OpenAI-compatible HTTP server on 127.0.0.1 standing in for the remote strong API.

It speaks POST /v1/chat/completions (plain and SSE streaming, ``data: [DONE]``), checks the bearer
key, echoes the sampling parameters it received (so tests can see pass-through), answers a request
with ``tools`` (and ``tool_choice`` not "none") with a call of the first tool, arguments ``{}``
(streamed as tool-call deltas, as OpenAI does), and can be told
to fail: ``server.mode = "ok" | "500" | "429" | "hang" | "drop_mid_stream" | "hang_mid_stream"``;
``server.fail_every`` fails every k-th request; ``server.fault_rate`` (with ``fault_modes`` and a
seeded ``rng``) fails exactly that fraction of each block of 10 requests, at random positions, with
one of the modes. 429s carry
``Retry-After: server.retry_after``; hangs sleep ``hang_s``; ``*_mid_stream`` faults happen after
``drop_after`` content chunks. ``server.requests`` records what arrived (for assertions: every field, as sent),
``server.log`` one ``(monotonic time, mode applied)`` per request.

    with OpenAIServer(api_key="k") as srv:   # srv.base_url == "http://127.0.0.1:<port>/v1"
        ...
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from bench.loopback import LoopbackServer, free_port

MODEL_REPLY = "strong model says hello"


class OpenAIServer:
    def __init__(self, api_key: str | None = None, port: int | None = None, model_reply: str = MODEL_REPLY) -> None:
        self.api_key = api_key
        self.port = port or free_port()
        self.model_reply = model_reply
        self.mode = "ok"
        self.fail_every = 0
        self.hang_s = 30.0
        self.fault_rate = 0.0
        self.fault_modes: tuple[str, ...] = ("500", "429", "hang")
        self.rng = random.Random(0)
        self.retry_after = "0"
        self.drop_after = 2
        self.log: list[tuple[float, str]] = []
        self._schedule: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self._count = 0
        self._loopback = LoopbackServer("fake OpenAI server", self.port)

    def _next_fault(self) -> str:
        """Exactly round(10 * fault_rate) faults in every 10 requests, at shuffled (seeded) positions."""
        if not self._schedule:
            k = round(10 * self.fault_rate)
            block = [self.rng.choice(self.fault_modes) for _ in range(k)] + ["ok"] * (10 - k)
            self.rng.shuffle(block)
            self._schedule = block
        return self._schedule.pop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- the app ---------------------------------------------------------------------------------

    def _app(self):
        app = FastAPI()
        srv = self

        def err(status: int, message: str, headers: dict | None = None):
            return JSONResponse({"error": {"message": message, "type": "server_error", "param": None, "code": None}},
                                status_code=status, headers=headers)

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            if srv.api_key is not None and request.headers.get("authorization") != f"Bearer {srv.api_key}":
                return err(401, "bad key")
            body = await request.json()
            srv.requests.append(body)
            srv._count += 1
            mode = srv.mode
            if srv.fail_every and srv._count % srv.fail_every == 0 and mode == "ok":
                mode = "500"
            if srv.fault_rate and mode == "ok":
                mode = srv._next_fault()
            srv.log.append((time.monotonic(), mode))
            if mode == "500":
                return err(500, "injected failure")
            if mode == "429":
                return err(429, "slow down", headers={"retry-after": str(srv.retry_after)})
            if mode == "hang":
                await asyncio.sleep(srv.hang_s)
            n = int(body.get("n") or 1)
            params = {k: body.get(k) for k in ("temperature", "max_tokens", "top_p", "stop", "n") if k in body}
            text = f"{srv.model_reply} {json.dumps(params, sort_keys=True)}"
            cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            tools = body.get("tools") if body.get("tool_choice") != "none" else None
            if tools:
                return _tool_call_answer(cid, body, tools[0]["function"]["name"])
            if not body.get("stream"):
                return {
                    "id": cid, "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                    "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"} for i in range(n)],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }

            async def events():
                for i in range(n):
                    yield _sse(cid, body["model"], i, {"role": "assistant", "content": ""})
                words = text.split(" ")
                for k, w in enumerate(words):
                    if mode == "drop_mid_stream" and k == srv.drop_after:
                        raise ConnectionResetError("injected drop")
                    if mode == "hang_mid_stream" and k == srv.drop_after:
                        await asyncio.sleep(srv.hang_s)
                    for i in range(n):
                        yield _sse(cid, body["model"], i, {"content": (" " if k else "") + w})
                for i in range(n):
                    yield _sse(cid, body["model"], i, {}, finish="stop")
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": 0,
                                                 "model": body["model"], "choices": [],
                                                 "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                                           "total_tokens": 15}}) + "\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        @app.get("/v1/models")
        async def models():
            return {"object": "list", "data": [{"id": "fake-strong", "object": "model", "created": 0, "owned_by": "t"}]}

        return app

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout_s: float = 20.0) -> "OpenAIServer":
        self._loopback.start(self._app(), timeout_s)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loopback.stop(timeout_s)

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _tool_call_answer(cid: str, body: dict, name: str):
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{}"}}
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    if not body.get("stream"):
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                             "finish_reason": "tool_calls"}], "usage": usage}

    async def events():
        yield _sse(cid, body["model"], 0, {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}]})
        for piece in ("{", "}"):
            yield _sse(cid, body["model"], 0, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield _sse(cid, body["model"], 0, {}, finish="tool_calls")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": 0,
                                         "model": body["model"], "choices": [], "usage": usage}) + "\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _sse(cid: str, model: str, index: int, delta: dict, finish: str | None = None) -> str:
    chunk = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model,
             "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
    return "data: " + json.dumps(chunk) + "\n\n"


if __name__ == "__main__":  # manual use: python -m tests.integration.openai_server
    import sys

    srv = OpenAIServer(api_key=sys.argv[1] if len(sys.argv) > 1 else None, port=int(sys.argv[2]) if len(sys.argv) > 2 else None)
    srv.start()
    print(srv.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
