"""The strong model: any OpenAI-compatible API through the official ``openai`` SDK's AsyncOpenAI.

- The API key comes from the environment variable named in config (never logged or returned).
  With no key the replica still starts, logs that once, and every call raises
  ``UpstreamUnavailableError`` so the ingress applies the fallback policy.
- Timeouts per attempt; retries with exponential backoff (+ jitter, honouring ``Retry-After``)
  on 429, 5xx, timeouts and connection errors. The SDK's own retries are off so that attempts are
  counted here.
- Streams are retried only before the first chunk arrives; a failure after that is raised to the
  ingress, which ends the SSE stream with an error event.
- Cooldown (circuit breaker): after ``cooldown_failures`` consecutive failed attempts (429, 5xx,
  timeouts, connection errors, rejected key) the provider is skipped for ``cooldown_s``: calls
  raise ``UpstreamUnavailableError`` (code ``upstream_cooling_down``) at once, without contacting
  it, so the ingress applies the fallback policy. After the cooldown one probe call at a time is let
  through; a success closes the breaker, a failure opens it again. Logged and counted (``info()``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from deployments.errors import (
    ContextLengthError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    is_context_length,
)
from deployments.openai_schema import chat_request_fields

log = logging.getLogger("ray.serve")


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
        cooldown_failures: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
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
        # circuit breaker (cooldown_failures 0 = off)
        self.cooldown_failures = cooldown_failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive_failures = 0
        self._open_until = 0.0
        self._probe_in_flight = False
        self._probe_since = 0.0
        self.cooldowns = 0          # times the breaker opened
        self.skipped = 0            # calls answered "cooling down" without contacting the provider
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
            if is_context_length(message, *_provider_param_and_code(exc)):  # another model may have the window
                return False, ContextLengthError(f"the model {self.model!r} rejected the conversation as too long "
                                                 f"(HTTP {status}): {message}", param="messages")
            return False, UpstreamRejectedError(f"the strong model rejected the request (HTTP {status}): {message}")
        return False, UpstreamError(f"the strong model call failed: {type(exc).__name__}")

    # --- circuit breaker ---------------------------------------------------------------------------

    def _tripped(self) -> bool:
        return bool(self.cooldown_failures) and self._consecutive_failures >= self.cooldown_failures

    def _admit(self) -> bool:
        """Before an attempt: raise if cooling down; return True if this attempt is the probe."""
        if not self._tripped():
            return False
        now = self._clock()
        # a probe that never reported back (cancelled call) stops blocking after one attempt's timeout
        probing = self._probe_in_flight and now - self._probe_since < self.request_timeout_s + 1.0
        if now < self._open_until or probing:
            self.skipped += 1
            left = max(0.0, self._open_until - now)
            raise UpstreamUnavailableError(
                f"the strong model {self.model!r} is cooling down after {self._consecutive_failures} consecutive "
                f"failures ({left:.1f}s left of strong_model.cooldown_s={self.cooldown_s:g}); not called",
                code="upstream_cooling_down")
        self._probe_in_flight = True
        self._probe_since = now
        return True

    def _record(self, ok: bool, probe: bool) -> None:
        if probe:
            self._probe_in_flight = False
        if ok:
            if self._tripped():
                log.warning("strong model %s: cooldown over, provider answered again", self.model)
            self._consecutive_failures = 0
            return
        was_tripped = self._tripped()
        self._consecutive_failures += 1
        # open on the transition, or when the probe fails; late failures of calls already in flight
        # while the breaker was open do not extend the cooldown
        if self._tripped() and (not was_tripped or probe):
            self._open_until = self._clock() + self.cooldown_s
            self.cooldowns += 1
            log.warning("strong model %s: %d consecutive failures; cooling down for %gs (cooldown #%d)",
                        self.model, self._consecutive_failures, self.cooldown_s, self.cooldowns)

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

    def _kwargs(self, req: dict[str, Any], stream: bool) -> dict[str, Any]:
        """The client's request as the SDK's ``create()`` arguments: the fields it knows as keywords,
        any other (a provider's own) in ``extra_body``; ``stream`` is this call's."""
        known = chat_request_fields()
        kwargs = {k: v for k, v in req.items() if k in known}
        extra = {k: v for k, v in req.items() if k not in known and k != "stream"}
        kwargs.update(model=self.model, stream=stream)
        if not stream:
            kwargs.pop("stream_options", None)  # OpenAI rejects stream_options without stream
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    # --- serving ---------------------------------------------------------------------------------

    async def chat(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.client is None:
            raise self._no_key()
        kwargs = self._kwargs(req, stream=False)
        for attempt in range(self.max_retries + 1):
            probe = self._admit()
            self.attempts += 1
            try:
                resp = await self.client.chat.completions.create(**kwargs)
            except Exception as exc:
                retryable, err = self._classify(exc)
                self._record(not _counts_as_failure(retryable, err), probe)
                if not retryable or attempt == self.max_retries or self._tripped():
                    log.warning("strong model call failed after %d attempt(s): %s", attempt + 1, err)
                    raise err from None
                self.retries += 1
                await self._sleep(self._delay(attempt, exc))
                continue
            self._record(True, probe)
            return resp.model_dump(exclude_none=True)
        raise AssertionError("unreachable")

    async def chat_stream(self, req: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        if self.client is None:
            raise self._no_key()
        kwargs = self._kwargs(req, stream=True)
        started = False
        for attempt in range(self.max_retries + 1):
            probe = self._admit()
            self.attempts += 1
            try:
                stream = await self.client.chat.completions.create(**kwargs)
                async for chunk in stream:
                    if not started:
                        started = True
                        self._record(True, probe)
                        probe = False
                    yield chunk.model_dump(exclude_none=True)
                if not started:
                    self._record(True, probe)
                return
            except Exception as exc:
                retryable, err = self._classify(exc)
                if not started:
                    self._record(not _counts_as_failure(retryable, err), probe)
                elif _counts_as_failure(retryable, err):
                    self._record(False, False)
                if started or not retryable or attempt == self.max_retries or self._tripped():
                    log.warning("strong model stream failed after %d attempt(s)%s: %s", attempt + 1,
                                " mid-stream" if started else "", err)
                    raise err from None
                self.retries += 1
                await self._sleep(self._delay(attempt, exc))

    def info(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "configured": self.client is not None,
                "api_key_env": self.api_key_env,
                "attempts": self.attempts, "retries": self.retries,
                "cooldowns": self.cooldowns, "skipped_while_cooling_down": self.skipped,
                "consecutive_failures": self._consecutive_failures,
                "cooling_down": self._tripped() and self._clock() < self._open_until}


def _counts_as_failure(retryable: bool, err: BaseException) -> bool:
    """Provider-side failures count toward the cooldown; the client's own bad request does not."""
    return retryable or (isinstance(err, UpstreamUnavailableError) and err.code == "upstream_auth_failed")


def _provider_error(exc: Any) -> dict[str, Any]:
    """The provider's ``error`` object from an openai ``APIStatusError``'s body ({} if none)."""
    body = getattr(exc, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else None
    return err if isinstance(err, dict) else {}


def _provider_message(exc: Any) -> str:
    message = _provider_error(exc).get("message")
    if isinstance(message, str):
        return message[:300]
    return str(getattr(exc, "message", "") or type(exc).__name__)[:300]


def _provider_param_and_code(exc: Any) -> tuple[Any, Any]:
    err = _provider_error(exc)
    return err.get("param"), err.get("code") or getattr(exc, "code", None)
