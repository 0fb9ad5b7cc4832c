"""The serving layer's errors and their one mapping to OpenAI-shaped HTTP responses.

Every error a client can see is ``{"error": {"message", "type", "param", "code"}}`` with the status
from ``ERROR_TABLE``; messages name the bad value and the fix, and never contain a secret.
"""

from __future__ import annotations

import logging
from typing import Any

from routers.errors import CheckpointError, ConfigError, RoutersError, UnknownRouterError

log = logging.getLogger(__name__)


class ServingError(Exception):
    """Base of the errors the serving layer raises on purpose. ``code``/``param`` go to the client."""

    default_code: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def __reduce__(self):  # picklable across Ray (keyword-only args)
        return (_rebuild, (type(self), self.message, self.param, self.code))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls, message, param, code):
    return cls(message, param=param, code=code)


class InvalidRequestError(ServingError):
    """The request is malformed or has a value out of range (400)."""

    default_code = "invalid_request"


class InvalidJSONError(InvalidRequestError):
    default_code = "invalid_json"


class UnsupportedMediaTypeError(ServingError):
    default_code = "unsupported_media_type"


class ModelNameError(InvalidRequestError):
    """The ``model`` string does not follow ``router-<name>[-<threshold>|-strong<fraction>]``."""

    default_code = "invalid_model_name"


class ThresholdError(InvalidRequestError):
    default_code = "threshold_out_of_range"


class CalibrationUnavailableError(InvalidRequestError):
    default_code = "calibration_unavailable"


class ContextLengthError(InvalidRequestError):
    """The conversation is longer than the model's window: another model with a larger one may
    serve it (two-model: ``route_strong_for: [context]``; N-way: the next candidate)."""

    default_code = "context_length_exceeded"


def is_context_length(message: str | None, param: Any = None, code: Any = None) -> bool:
    """A backend's "conversation too long" verdict: vLLM's (``param`` input_tokens / input_text,
    "maximum context length" in the message; its HTTP server puts the status in ``code``) or an
    OpenAI-style provider's (``code`` context_length_exceeded). The one place this rule lives."""
    return (code == "context_length_exceeded" or param in ("input_tokens", "input_text")
            or "maximum context length" in (message or ""))


class UnsupportedFeatureError(InvalidRequestError):
    """The request needs a feature (images, audio, tools) that the model it goes to cannot serve."""

    default_code = "unsupported_feature"


class AuthenticationError(ServingError):
    default_code = "invalid_api_key"


class NotFoundError(ServingError):
    default_code = "not_found"


class ConflictError(ServingError):
    """The request repeats one that may happen once (e.g. a second feedback on one answer)."""

    default_code = "conflict"


class PayloadTooLargeError(ServingError):
    default_code = "request_too_large"


class UpstreamError(ServingError):
    """The strong-model provider failed (after retries) and the policy is ``error`` (502)."""

    default_code = "upstream_error"


class UpstreamUnavailableError(UpstreamError):
    """The provider cannot be used at all (no API key, rejected key, connection refused)."""

    default_code = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    default_code = "upstream_timeout"


class UpstreamRejectedError(ServingError):
    """The provider answered 4xx (other than 401/403/408/429) to the request itself: a client error."""

    default_code = "upstream_rejected_request"


class BudgetExceededError(ServingError):
    """A tenant's daily dollar cap is spent and its policy is ``reject`` (429 with Retry-After)."""

    default_code = "budget_exceeded"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 retry_after_s: int = 60) -> None:
        super().__init__(message, param=param, code=code)
        self.retry_after_s = int(retry_after_s)

    def __reduce__(self):
        return (_rebuild_budget, (self.message, self.param, self.code, self.retry_after_s))


def _rebuild_budget(message, param, code, retry_after_s):
    return BudgetExceededError(message, param=param, code=code, retry_after_s=retry_after_s)


class BackendUnavailableError(ServingError):
    """A local replica (router / weak model) failed or timed out (503)."""

    default_code = "backend_unavailable"


#: THE table: exception class -> (HTTP status, OpenAI error ``type``). Most specific first.
ERROR_TABLE: list[tuple[type[BaseException], int, str]] = [
    (AuthenticationError, 401, "authentication_error"),
    (NotFoundError, 404, "invalid_request_error"),
    (ConflictError, 409, "invalid_request_error"),
    (PayloadTooLargeError, 413, "invalid_request_error"),
    (UnsupportedMediaTypeError, 415, "invalid_request_error"),
    (BudgetExceededError, 429, "insufficient_quota"),
    (InvalidRequestError, 400, "invalid_request_error"),
    (UpstreamRejectedError, 400, "invalid_request_error"),
    (UpstreamTimeoutError, 504, "upstream_error"),
    (UpstreamError, 502, "upstream_error"),
    (BackendUnavailableError, 503, "server_error"),
    # the routing library's own errors, when they reach a request
    (UnknownRouterError, 400, "invalid_request_error"),
    (ConfigError, 400, "invalid_request_error"),
    (CheckpointError, 503, "server_error"),
    (RoutersError, 500, "server_error"),
]


def unwrap(exc: BaseException) -> BaseException:
    """The original exception behind a Ray wrapper (RayTaskError.cause), else ``exc``."""
    seen = 0
    while seen < 5 and getattr(exc, "cause", None) is not None and isinstance(exc.cause, BaseException):
        exc = exc.cause
        seen += 1
    return exc


def classify(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, body) for any exception. Unknown exceptions become a generic 500 (details logged)."""
    exc = unwrap(exc)
    for cls, status, err_type in ERROR_TABLE:
        if isinstance(exc, cls):
            if isinstance(exc, ServingError):
                message, param, code = exc.message, exc.param, exc.code
            else:
                message, (code, param) = str(exc), _library_code_and_param(exc)
            return status, error_body(message, err_type, param, code)
    log.error("unexpected error while serving a request: %s: %s", type(exc).__name__, exc)
    return 500, error_body(
        "internal server error; see the server log for details", "server_error", None, "internal_error"
    )


def _library_code_and_param(exc: BaseException) -> tuple[str, str | None]:
    if isinstance(exc, UnknownRouterError):
        return "unknown_router", "model"  # a client names a router only in `model`
    if isinstance(exc, CheckpointError):
        return "checkpoint_unavailable", None
    if isinstance(exc, ConfigError):
        return "invalid_value", None
    return "router_error", None


def error_headers(exc: BaseException) -> dict[str, str]:
    """HTTP headers an error response carries besides its body (Retry-After of a spent budget)."""
    exc = unwrap(exc)
    if isinstance(exc, BudgetExceededError):
        return {"retry-after": str(max(1, exc.retry_after_s))}
    return {}


def error_body(message: str, err_type: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def _is_union_tag(part: Any) -> bool:
    """pydantic names the member of a union it tried in ``loc`` (``ResponseFormatText``, ``str``,
    ``list[...]``, ``literal[...]``, ``function-wrap[...]``); these are not fields of the request."""
    if not isinstance(part, str):
        return False
    return part[:1].isupper() or "[" in part or part in ("str", "int", "float", "bool", "dict", "list", "none")


def from_validation_error(exc: Any) -> InvalidRequestError:
    """A pydantic ValidationError -> InvalidRequestError naming the first bad field and value."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return InvalidRequestError(f"invalid request: {exc}")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",) and not _is_union_tag(p)]
    param = ".".join(loc) or None
    value = first.get("input")
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    msg = first.get("msg", "invalid value")
    extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    where = f"'{param}'" if param else "the request body"
    return InvalidRequestError(f"invalid value for {where}: {msg}; got {shown}{extra}", param=param,
                               code="invalid_value" if param else "invalid_request")
