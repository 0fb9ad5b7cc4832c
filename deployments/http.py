"""The HTTP layer of the ingress: the FastAPI app, API-key auth, bounded JSON bodies and the exception
handlers. It knows HTTP and nothing of routing: every endpoint reads and validates its request
here and hands it to the ``ChatService`` (``deployments.chat``), whose errors map to OpenAI-shaped
responses in one place (``deployments.errors.classify``).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from routers.errors import RoutersError

from deployments.chat import ChatService
from deployments.errors import (
    AuthenticationError,
    InvalidJSONError,
    NotFoundError,
    PayloadTooLargeError,
    ServingError,
    UnsupportedMediaTypeError,
    classify,
    error_headers,
    from_validation_error,
)
from deployments.metrics import ServingMetrics
from deployments.protocol import ChatCompletionRequest, FeedbackRequest, RouteRequest

log = logging.getLogger("ray.serve")
_Schema = TypeVar("_Schema", bound=BaseModel)
_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def load_api_keys(env_name: str | None) -> list[bytes]:
    """Comma-separated ingress keys from ``$env_name``; empty list = auth off."""
    if not env_name:
        return []
    raw = os.environ.get(env_name, "")
    return [k.strip().encode() for k in raw.split(",") if k.strip()]


class ApiKeyAuth:
    """``Authorization: Bearer <key>`` against the keys in ``$env_name`` and the tenants' keys
    (``tenant_envs``: tenant name -> env var; budget.tenants). No key anywhere: the API is open.
    ``check`` returns the tenant a key belongs to (None for the shared keys)."""

    def __init__(self, env_name: str | None, tenant_envs: dict[str, str] | None = None) -> None:
        self.env_name = env_name
        self._keys: list[tuple[bytes, str | None]] = [(k, None) for k in load_api_keys(env_name)]
        for tenant, env in (tenant_envs or {}).items():
            self._keys += [(k, tenant) for k in load_api_keys(env)]
        if self._keys:
            log.info("ingress API keys: %d configured (from $%s and %d tenant(s))", len(self._keys), env_name,
                     len(tenant_envs or {}))
        else:
            log.warning("ingress API keys: none in $%s; the API is open to anyone who can reach it", env_name)

    def check(self, authorization: str | None) -> str | None:
        if not self._keys:
            return None
        token = b""
        if authorization and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip().encode()
        ok, tenant = False, None
        for key, owner in self._keys:  # constant time per key, and no early exit
            match = hmac.compare_digest(token, key)
            ok |= match
            if match:
                tenant = owner
        if ok:
            return tenant
        if not ok:
            raise AuthenticationError(
                "missing or invalid API key; send 'Authorization: Bearer <key>' with a key from "
                f"${self.env_name}" if not token else "invalid API key"
            )


async def read_json(request: Request, max_body_bytes: int, setting: str = "ingress.max_body_bytes") -> dict[str, Any]:
    """The body as a JSON object, read in chunks up to ``max_body_bytes``; each failure raises the
    ServingError of its status (413, 415, 400)."""
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype.split(";")[0].lower():
        raise UnsupportedMediaTypeError(f"content-type must be application/json, got {ctype[:60]!r}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_body_bytes:
        raise PayloadTooLargeError(
            f"request body is {declared} bytes; the limit is {max_body_bytes} ({setting})")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body_bytes:
            raise PayloadTooLargeError(
                f"request body exceeds the limit of {max_body_bytes} bytes ({setting})")
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


def request_id(request: Request) -> tuple[str, bool]:
    """The request's id and whether this app made it: Serve's proxy puts ``x-request-id`` on every
    request (the client's own, or a new one) and on the response; outside Serve one is made here."""
    rid = request.headers.get("x-request-id")
    if rid:
        return rid[:128], False
    import uuid

    return uuid.uuid4().hex, True


def build_http_app(service: ChatService, auth: ApiKeyAuth, max_body_bytes: int, metrics: ServingMetrics) -> FastAPI:
    """The OpenAI-compatible FastAPI app in front of ``service``."""
    app = FastAPI(title="rayroute", description="OpenAI-compatible LLM router (RouteLLM on Ray Serve)",
                  docs_url=None, redoc_url=None, openapi_url=None)

    async def parse(request: Request, schema: type[_Schema]) -> tuple[_Schema, str | None]:
        """The prologue of every POST endpoint: authorise (the key's tenant), read a bounded JSON
        object, validate it."""
        tenant = auth.check(request.headers.get("authorization"))
        data = await read_json(request, max_body_bytes)
        try:
            return schema.model_validate(data), tenant
        except ValidationError as exc:
            raise from_validation_error(exc) from None

    def error_response(exc: BaseException) -> JSONResponse:
        status, body = classify(exc)
        metrics.record_error(status, body["error"]["code"] or "")
        return JSONResponse(body, status_code=status, headers=error_headers(exc))

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
        req, tenant = await parse(request, ChatCompletionRequest)
        rid, own = request_id(request)
        extra = {"x-request-id": rid} if own else {}
        if req.stream:
            events, headers = await service.chat_stream(req, tenant, rid)
            return StreamingResponse(events, media_type="text/event-stream",
                                     headers={**headers, **extra, "cache-control": "no-cache"})
        body, headers = await service.chat(req, tenant, rid)
        return JSONResponse(body, headers={**headers, **extra})

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        limit = service.learning.args.feedback_max_body_bytes if service.learning is not None else 4096
        auth.check(request.headers.get("authorization"))
        data = await read_json(request, min(limit, max_body_bytes), "learning.feedback_max_body_bytes")
        try:
            req = FeedbackRequest.model_validate(data)
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        if service.learning is None:
            raise NotFoundError("feedback is off on this server (learning.feedback: false)", code="feedback_disabled")
        return await service.learning.feedback(req.request_id, req.verdict_score())

    @app.post("/v1/route")
    async def route(request: Request):
        req, tenant = await parse(request, RouteRequest)
        return (await service.route(req, tenant)).model_dump()

    @app.get("/v1/budget")
    async def budget(request: Request):
        """Budget control's shared state as this replica last saw it (α, share, realised share per
        live target; tenants' spend today)."""
        auth.check(request.headers.get("authorization"))
        if service.budget is None:
            return {"enabled": False}
        return {"enabled": True, **service.budget.snapshot()}

    @app.get("/v1/models")
    async def models(request: Request):
        auth.check(request.headers.get("authorization"))
        return service.list_models()

    @app.get("/v1/stats")
    async def stats(request: Request):
        auth.check(request.headers.get("authorization"))
        snap = metrics.snapshot()
        if service.learning is not None and service.learning.args.enabled:
            from deployments.promotion import promotion_counts

            snap["learning"]["promotions"] = promotion_counts(service.learning.args.store)
        return snap

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    return app
