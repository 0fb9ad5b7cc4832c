"""The HTTP front door: an OpenAI-compatible FastAPI app that sees deployment handles only.

Routes: POST /v1/chat/completions (plain + SSE), POST /v1/route, GET /v1/models, GET /v1/stats,
GET /health. Plain class; ``deployments.app`` wraps it with ``serve.ingress()`` (late-bound ASGI
app: ``__serve_build_asgi_app__``) and ``serve.deployment``. ``build_asgi_app`` also works without
Ray (any objects with the handle interface), which is how it is exercised in isolation.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from routers.errors import ConfigError, RoutersError, UnknownRouterError

from deployments.errors import (
    AuthenticationError,
    BackendUnavailableError,
    InvalidJSONError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ServingError,
    UnsupportedMediaTypeError,
    UpstreamError,
    UpstreamUnavailableError,
    classify,
    from_validation_error,
    unwrap,
)
from deployments.metrics import ServingMetrics
from deployments.protocol import (
    ROUTER_PREFIX,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    ModelSelection,
    RouteDecision,
    RouteRequest,
    parse_model_name,
)

log = logging.getLogger("ray.serve")
_Schema = TypeVar("_Schema", bound=BaseModel)
_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def load_api_keys(env_name: str | None) -> list[bytes]:
    """Comma-separated ingress keys from ``$env_name``; empty list = auth off."""
    if not env_name:
        return []
    raw = os.environ.get(env_name, "")
    return [k.strip().encode() for k in raw.split(",") if k.strip()]


async def _await(response: Any) -> Any:
    return await response


class Ingress:
    """OpenAI-compatible ingress. ``routers``: alias -> handle of a RouterReplica deployment, or an
    ``InProcessRouter`` (same ``route.remote`` interface) for a router placed in the ingress."""

    def __init__(
        self,
        routers: dict[str, Any],
        weak: Any,
        strong: Any,
        *,
        weak_model_name: str,
        strong_model_name: str,
        default_router: str,
        fallback: str = "weak",
        on_router_error: str = "error",
        api_keys_env: str | None = "RAYROUTE_API_KEYS",
        max_body_bytes: int = 1 << 20,
        router_timeout_s: float = 10.0,
        backend_timeout_s: float = 120.0,
        prices_usd_per_1m: dict[str, list[float]] | None = None,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.routers = dict(routers)
        from deployments.router_replica import InProcessRouter

        for router in self.routers.values():  # routers placed in the ingress load here, now
            if isinstance(router, InProcessRouter):  # (a handle answers any attribute: no hasattr)
                router.start()
        self.weak = weak
        self.strong = strong
        self.weak_model_name = weak_model_name
        self.strong_model_name = strong_model_name
        self.default_router = default_router
        self.fallback = fallback
        self.on_router_error = on_router_error
        self.max_body_bytes = max_body_bytes
        self.router_timeout_s = router_timeout_s
        self.backend_timeout_s = backend_timeout_s
        self.prices = prices_usd_per_1m or {}
        self.metrics = metrics if metrics is not None else ServingMetrics(export=True)
        self._strong_info: dict[str, Any] | None = None
        self._api_keys = load_api_keys(api_keys_env)
        self._api_keys_env = api_keys_env
        if self._api_keys:
            log.info("ingress API keys: %d configured from $%s", len(self._api_keys), api_keys_env)
        else:
            log.warning("ingress API keys: none in $%s; the API is open to anyone who can reach it", api_keys_env)

    def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        """Serve's user_config: the failure policies, changeable in place (``serve deploy``).

        ``{"fallback": "weak"|"error", "on_router_error": "error"|"weak"|"strong"}``; absent keys keep
        their value. Bad values raise (Serve keeps the old replica), naming the value and the choices.
        """
        cfg = dict(user_config or {})
        choices = {"fallback": ("weak", "error"), "on_router_error": ("error", "weak", "strong")}
        unknown = sorted(set(cfg) - set(choices))
        if unknown:
            raise ValueError(f"unknown ingress user_config keys {unknown}; known: {sorted(choices)}")
        for key, allowed in choices.items():
            if key in cfg and cfg[key] not in allowed:
                raise ValueError(f"ingress user_config {key}={cfg[key]!r} is not one of {list(allowed)}")
        self.fallback = cfg.get("fallback", self.fallback)
        self.on_router_error = cfg.get("on_router_error", self.on_router_error)
        log.info("ingress policies: strong-model fallback=%s, on_router_error=%s", self.fallback, self.on_router_error)

    def policies(self) -> dict[str, str]:
        return {"fallback": self.fallback, "on_router_error": self.on_router_error}

    # --- request plumbing ------------------------------------------------------------------------

    def check_auth(self, authorization: str | None) -> None:
        if not self._api_keys:
            return
        token = b""
        if authorization and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip().encode()
        ok = False
        for key in self._api_keys:  # constant time per key, and no early exit
            ok |= hmac.compare_digest(token, key)
        if not ok:
            raise AuthenticationError(
                "missing or invalid API key; send 'Authorization: Bearer <key>' with a key from "
                f"${self._api_keys_env}" if not token else "invalid API key"
            )

    async def parse_request(self, request: Request, schema: type[_Schema]) -> _Schema:
        """The prologue of every POST endpoint: authorise, read a bounded JSON object, validate it
        against ``schema``. Each step raises the ServingError that maps to its HTTP status."""
        self.check_auth(request.headers.get("authorization"))
        data = await self.read_json(request)
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            raise from_validation_error(exc) from None

    async def read_json(self, request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if ctype and "json" not in ctype.split(";")[0].lower():
            raise UnsupportedMediaTypeError(f"content-type must be application/json, got {ctype[:60]!r}")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLargeError(
                f"request body is {declared} bytes; the limit is {self.max_body_bytes} (ingress.max_body_bytes)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise PayloadTooLargeError(
                    f"request body exceeds the limit of {self.max_body_bytes} bytes (ingress.max_body_bytes)")
        if not body:
            raise InvalidJSONError("the request body is empty; send a JSON object")
        try:
            data = json.loads(bytes(body))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidJSONError(f"the request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidJSONError("the request body is nested too deeply to parse; send a flat chat request") from None
        if not isinstance(data, dict):
            raise InvalidJSONError(f"the request body must be a JSON object, got {type(data).__name__}")
        if _SURROGATE_ESCAPE.search(body):  # cheap pre-check; valid pairs (escaped emoji) pass below
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidJSONError("the request body contains a lone UTF-16 surrogate escape (\\ud800-\\udfff) "
                                       "that is not valid Unicode; send UTF-8 text") from None
        return data

    def select(self, model: str) -> ModelSelection:
        if model == "router":  # bare 'router': the default router at its default threshold
            return ModelSelection(router=self.default_router)
        sel = parse_model_name(model, direct_models=(self.strong_model_name, self.weak_model_name))
        if sel.routed and sel.router not in self.routers:
            raise UnknownRouterError(
                f"unknown router {sel.router!r} in model {model!r}; this server has: "
                + ", ".join(f"{ROUTER_PREFIX}{a}" for a in self.routers)
            )
        return sel

    async def decide(self, sel: ModelSelection, messages: Any) -> dict[str, Any]:
        """Routing decision: {router, route, routed_model, p_strong, threshold, strong_fraction}."""
        if not sel.routed:
            route = "strong" if sel.direct_model == self.strong_model_name else "weak"
            return {"router": "none", "route": route, "routed_model": sel.direct_model,
                    "p_strong": None, "threshold": None, "strong_fraction": None}
        handle = self.routers[sel.router]
        t0 = time.perf_counter()
        try:
            resp = handle.route.remote(messages, sel.threshold, sel.strong_fraction)
            out = await asyncio.wait_for(_await(resp), self.router_timeout_s)
        except Exception as exc:
            cause = unwrap(exc)
            if isinstance(cause, (InvalidRequestError, ConfigError)):
                raise cause from None  # the client's fault (bad threshold, no user text): 400
            reason = "timeout" if isinstance(exc, asyncio.TimeoutError) else type(cause).__name__
            if self.on_router_error == "error":
                raise BackendUnavailableError(
                    f"router {sel.router!r} is unavailable ({reason}); retry, or set "
                    "ingress.on_router_error to 'weak' or 'strong'") from None
            route = self.on_router_error
            model = self.strong_model_name if route == "strong" else self.weak_model_name
            log.warning("router %r failed (%s); sending to %s per on_router_error", sel.router, reason, route)
            self.metrics.record_fallback(f"router_{reason}", f"router-{sel.router}", model)
            return {"router": sel.router, "route": route, "routed_model": model, "p_strong": None,
                    "threshold": sel.threshold, "strong_fraction": sel.strong_fraction,
                    "fallback": f"router_error:{reason}"}
        latency = time.perf_counter() - t0
        route = "strong" if out["strong"] else "weak"
        self.metrics.record_route(sel.router, route, latency, cached=bool(out.get("cached")))
        return {"router": sel.router, "route": route,
                "routed_model": self.strong_model_name if route == "strong" else self.weak_model_name,
                "p_strong": out["p_strong"], "threshold": out["threshold"],
                "strong_fraction": out.get("strong_fraction")}

    def headers(self, decision: dict[str, Any], used_model: str, fallback: str | None) -> dict[str, str]:
        h = {"x-routed-model": used_model, "x-router": str(decision["router"])}
        if decision.get("p_strong") is not None:
            h["x-router-p-strong"] = f"{decision['p_strong']:.6g}"
        if decision.get("threshold") is not None:
            h["x-router-threshold"] = f"{decision['threshold']:.6g}"
        fb = fallback or decision.get("fallback")
        if fb:
            h["x-rayroute-fallback"] = fb
        return h

    def _cost(self, model: str, usage: dict[str, Any] | None) -> None:
        price = self.prices.get(model)
        if not price or not usage:
            return
        usd = (usage.get("prompt_tokens", 0) * price[0] + usage.get("completion_tokens", 0) * price[1]) / 1e6
        self.metrics.record_cost(model, usd)

    async def _check_strong_configured(self) -> None:
        """Raise the no-key error here (no replica call, no per-request error log) when the strong
        replica reported at its first use that it has no API key. Asked once, then cached."""
        if self._strong_info is None:
            try:
                self._strong_info = await asyncio.wait_for(_await(self.strong.info.remote()), self.router_timeout_s)
            except Exception:
                return  # let the real call decide
        if not self._strong_info.get("configured", True):
            raise UpstreamUnavailableError(
                f"the strong model {self.strong_model_name!r} is not configured: no API key in "
                f"${self._strong_info.get('api_key_env', '?')}", code="strong_model_no_api_key")

    def _backend(self, route: str) -> tuple[Any, str]:
        return (self.strong, self.strong_model_name) if route == "strong" else (self.weak, self.weak_model_name)

    def _fallback_allowed(self, route: str, exc: BaseException) -> bool:
        cause = unwrap(exc)
        if route != "strong" or self.fallback != "weak":
            return False
        if isinstance(cause, UpstreamError):
            return True
        # the strong replica itself died / timed out: the provider is unusable either way
        return not isinstance(cause, ServingError)

    @staticmethod
    def _backend_error(exc: BaseException, model: str) -> BaseException:
        cause = unwrap(exc)
        if isinstance(cause, ServingError):
            return cause
        if isinstance(exc, asyncio.TimeoutError):
            return BackendUnavailableError(f"the model {model!r} did not answer in time")
        return BackendUnavailableError(f"the model {model!r} is unavailable ({type(cause).__name__}); retry")

    # --- endpoints -------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Any:
        req = await self.parse_request(request, ChatCompletionRequest)
        sel = self.select(req.model)
        messages = req.messages_as_dicts()
        decision = await self.decide(sel, messages)
        route = decision["route"]
        if req.stream:
            return await self._stream(req, decision, route, StreamingResponse)
        backend, model = self._backend(route)
        fallback = None
        try:
            if route == "strong":
                await self._check_strong_configured()
            result = await asyncio.wait_for(_await(backend.chat.remote(req.backend_payload(model))),
                                            self.backend_timeout_s)
        except Exception as exc:
            if not self._fallback_allowed(route, exc):
                raise self._backend_error(exc, model) from None
            fallback = self._record_fallback(exc, model)
            model = self.weak_model_name
            try:
                result = await asyncio.wait_for(_await(self.weak.chat.remote(req.backend_payload(model))),
                                                self.backend_timeout_s)
            except Exception as exc2:
                raise self._backend_error(exc2, model) from None
        result["model"] = model
        self._cost(model, result.get("usage"))
        self.metrics.record_request(decision["router"], model, "weak" if fallback else route)
        return JSONResponse(result, headers=self.headers(decision, model, fallback))

    def _record_fallback(self, exc: BaseException, from_model: str) -> str:
        cause = unwrap(exc)
        reason = getattr(cause, "code", None) or type(cause).__name__
        log.warning("strong model %s failed (%s); falling back to the weak model %s",
                    from_model, reason, self.weak_model_name)
        self.metrics.record_fallback(reason, from_model, self.weak_model_name)
        return f"strong_failed:{reason}"

    async def _stream(self, req: ChatCompletionRequest, decision: dict[str, Any], route: str, streaming_cls) -> Any:
        backend, model = self._backend(route)
        fallback = None

        async def open_stream(handle: Any, model_name: str):
            if handle is self.strong:
                await self._check_strong_configured()
            gen = handle.options(stream=True).chat_stream.remote(req.backend_payload(model_name))
            first = await asyncio.wait_for(gen.__anext__(), self.backend_timeout_s)
            return gen, first

        try:
            gen, first = await open_stream(backend, model)
        except StopAsyncIteration:
            raise BackendUnavailableError(f"the model {model!r} returned an empty stream") from None
        except Exception as exc:
            if not self._fallback_allowed(route, exc):
                raise self._backend_error(exc, model) from None
            fallback = self._record_fallback(exc, model)
            model = self.weak_model_name
            try:
                gen, first = await open_stream(self.weak, model)
            except Exception as exc2:
                raise self._backend_error(exc2, model) from None
        self.metrics.record_request(decision["router"], model, "weak" if fallback else route)
        used = model

        async def sse() -> AsyncIterator[str]:
            chunk = first
            try:
                while True:
                    chunk["model"] = used
                    if chunk.get("usage"):
                        self._cost(used, chunk["usage"])
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                    chunk = await asyncio.wait_for(gen.__anext__(), self.backend_timeout_s)
            except StopAsyncIteration:
                pass
            except Exception as exc:
                status, body = classify(self._backend_error(exc, used))
                self.metrics.record_error(status, body["error"]["code"] or "")
                log.warning("stream from %s broke: %s", used, body["error"]["message"])
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"

        return streaming_cls(sse(), media_type="text/event-stream",
                             headers={**self.headers(decision, used, fallback), "cache-control": "no-cache"})

    async def route_only(self, request: Request) -> dict[str, Any]:
        req = await self.parse_request(request, RouteRequest)
        sel = self.select(req.model)
        messages = [m.model_dump(exclude_none=True) for m in req.messages] if req.messages is not None else req.prompt
        decision = await self.decide(sel, messages)
        if decision["p_strong"] is None and sel.routed:
            raise BackendUnavailableError(f"router {sel.router!r} is unavailable; retry")
        return decision

    def list_models(self) -> dict[str, Any]:
        cards = [ModelCard(id=f"{ROUTER_PREFIX}{a}", kind="router") for a in self.routers]
        cards += [ModelCard(id=self.strong_model_name, kind="strong"), ModelCard(id=self.weak_model_name, kind="weak")]
        return ModelList(data=cards).model_dump()

    # --- the ASGI app ----------------------------------------------------------------------------

    def build_asgi_app(self) -> Any:
        app = FastAPI(title="rayroute", description="OpenAI-compatible LLM router (RouteLLM on Ray Serve)",
                      docs_url=None, redoc_url=None, openapi_url=None)
        ingress = self

        def error_response(exc: BaseException) -> JSONResponse:
            status, body = classify(exc)
            ingress.metrics.record_error(status, body["error"]["code"] or "")
            return JSONResponse(body, status_code=status)

        @app.exception_handler(Exception)
        async def _any(_: Request, exc: Exception):
            return error_response(exc)

        @app.exception_handler(ServingError)
        async def _serving(_: Request, exc: ServingError):
            return error_response(exc)

        @app.exception_handler(RoutersError)  # e.g. an unknown router in `model`
        async def _library(_: Request, exc: RoutersError):
            return error_response(exc)

        @app.exception_handler(RequestValidationError)
        async def _validation(_: Request, exc: RequestValidationError):
            return error_response(from_validation_error(exc))

        @app.exception_handler(StarletteHTTPException)
        async def _http(request: Request, exc: StarletteHTTPException):
            if exc.status_code == 404:
                return error_response(NotFoundError(f"no route {request.method} {request.url.path}; see GET /v1/models"))
            if exc.status_code == 405:
                body = {"error": {"message": f"method {request.method} is not allowed on {request.url.path}",
                                  "type": "invalid_request_error", "param": None, "code": "method_not_allowed"}}
                return JSONResponse(body, status_code=405)
            return JSONResponse({"error": {"message": str(exc.detail), "type": "invalid_request_error",
                                           "param": None, "code": None}}, status_code=exc.status_code)

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request):
            return await ingress.chat_completions(request)

        @app.post("/v1/route")
        async def route(request: Request):
            return RouteDecision(**{k: v for k, v in (await ingress.route_only(request)).items()
                                    if k in RouteDecision.model_fields}).model_dump()

        @app.get("/v1/models")
        async def models(request: Request):
            ingress.check_auth(request.headers.get("authorization"))
            return ingress.list_models()

        @app.get("/v1/stats")
        async def stats(request: Request):
            ingress.check_auth(request.headers.get("authorization"))
            return ingress.metrics.snapshot()

        @app.get("/health")
        async def health():
            return {"status": "ok"}

        return app

    __serve_build_asgi_app__ = build_asgi_app
