"""The strong model: any OpenAI-compatible API through the official ``openai`` SDK's AsyncOpenAI.

- The API key comes from the environment variable named in config (never logged or returned).
  With no key the replica still starts, logs that once, and every call raises
  ``UpstreamUnavailableError`` so the ingress applies the fallback policy.
- Timeouts per attempt; retries with exponential backoff (+ jitter, honouring ``Retry-After``)
  on 429, 5xx, timeouts and connection errors. The SDK's own retries are off so that attempts are
  counted here.
- Streams are retried only before the first chunk arrives; a failure after that is raised to the
  ingress, which ends the SSE stream with an error event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from deployments.errors import (
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

log = logging.getLogger("ray.serve")

PASS_THROUGH = ("temperature", "top_p", "max_tokens", "stop", "n", "seed", "presence_penalty", "frequency_penalty")


def default_client_factory(base_url: str, api_key: str, timeout_s: float) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)


class StrongModel:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        request_timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 8.0,
        client_factory: Callable[[str, str, float], Any] = default_client_factory,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.request_timeout_s = request_timeout_s
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self.attempts = 0
        self.retries = 0
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            self.client = None
            log.warning(
                "strong model %s: no API key in $%s; the app runs and every strong call applies the "
                "fallback policy. Set %s to enable it.", model, api_key_env, api_key_env,
            )
        else:
            self.client = client_factory(base_url, key, request_timeout_s)
            log.info("strong model %s at %s (key from $%s)", model, base_url, api_key_env)

    # --- error handling --------------------------------------------------------------------------

    def _no_key(self) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(
            f"the strong model {self.model!r} is not configured: no API key in ${self.api_key_env}",
            code="strong_model_no_api_key",
        )

    def _classify(self, exc: BaseException) -> tuple[bool, Exception]:
        """(retryable, error to raise if not retried)."""
        import openai

        if isinstance(exc, openai.APITimeoutError) or isinstance(exc, asyncio.TimeoutError):
            return True, UpstreamTimeoutError(
                f"the strong model {self.model!r} timed out after {self.request_timeout_s}s")
        if isinstance(exc, openai.APIConnectionError):
            return True, UpstreamUnavailableError(
                f"cannot connect to the strong model at {self.base_url}", code="upstream_connection_error")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status == 429 or status >= 500 or status == 408:
                return True, UpstreamError(f"the strong model {self.model!r} answered HTTP {status}",
                                           code=f"upstream_http_{status}")
            if status in (401, 403):
                return False, UpstreamUnavailableError(
                    f"the strong model provider rejected the configured key (HTTP {status}); check ${self.api_key_env}",
                    code="upstream_auth_failed")
            message = _provider_message(exc)
            return False, UpstreamRejectedError(f"the strong model rejected the request (HTTP {status}): {message}")
        return False, UpstreamError(f"the strong model call failed: {type(exc).__name__}")

    def _delay(self, attempt: int, exc: BaseException) -> float:
        retry_after = None
        response = getattr(exc, "response", None)
        if response is not None:
            try:
                retry_after = float(response.headers.get("retry-after"))
            except (TypeError, ValueError):
                retry_after = None
        base = min(self.backoff_max_s, self.backoff_initial_s * (2 ** attempt))
        delay = base * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay

    def _kwargs(self, req: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: req[k] for k in PASS_THROUGH if req.get(k) is not None}
        kwargs["model"] = self.model
        kwargs["messages"] = req["messages"]
        return kwargs

    # --- serving ---------------------------------------------------------------------------------

    async def chat(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.client is None:
            raise self._no_key()
        kwargs = self._kwargs(req)
        for attempt in range(self.max_retries + 1):
            self.attempts += 1
            try:
                resp = await self.client.chat.completions.create(**kwargs)
                return resp.model_dump(exclude_none=True)
            except Exception as exc:
                retryable, err = self._classify(exc)
                if not retryable or attempt == self.max_retries:
                    log.warning("strong model call failed after %d attempt(s): %s", attempt + 1, err)
                    raise err from None
                self.retries += 1
                await self._sleep(self._delay(attempt, exc))
        raise AssertionError("unreachable")

    async def chat_stream(self, req: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        if self.client is None:
            raise self._no_key()
        kwargs = self._kwargs(req)
        kwargs["stream"] = True
        if req.get("include_usage"):
            kwargs["stream_options"] = {"include_usage": True}
        started = False
        for attempt in range(self.max_retries + 1):
            self.attempts += 1
            try:
                stream = await self.client.chat.completions.create(**kwargs)
                async for chunk in stream:
                    started = True
                    yield chunk.model_dump(exclude_none=True)
                return
            except Exception as exc:
                retryable, err = self._classify(exc)
                if started or not retryable or attempt == self.max_retries:
                    log.warning("strong model stream failed after %d attempt(s)%s: %s", attempt + 1,
                                " mid-stream" if started else "", err)
                    raise err from None
                self.retries += 1
                await self._sleep(self._delay(attempt, exc))

    def info(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "configured": self.client is not None,
                "api_key_env": self.api_key_env,
                "attempts": self.attempts, "retries": self.retries}


def _provider_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:300]
    return str(getattr(exc, "message", "") or type(exc).__name__)[:300]
