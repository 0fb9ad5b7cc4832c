"""OpenAI chat-completions request/response models and the ``model`` string grammar.

Model names (what clients put in ``model``), RouteLLM-compatible:

- ``router-<name>-<threshold>``  e.g. ``router-mf-0.11593``: route with router ``<name>`` at cost
  threshold α in [0, 1] (strong when P(strong wins) >= α);
- ``router-<name>``               the router's configured default threshold;
- ``router-<name>-strong<f>``     e.g. ``router-mf-strong0.3``: aim for a strong-call fraction
  ``f`` in [0, 1]; the threshold comes from the router's start-up calibration;
- ``router-<name>-usd<x>``         e.g. ``router-linear_static-usd40``: hold a spend of ``x`` USD per
  hour (x >= 0) on this name's traffic; needs ``budget.enabled`` (``deployments.budget``). With
  budget control on, ``strong<f>`` is held live too instead of calibrated once;
- ``router-<name>-cost<λ>``      e.g. ``router-knn-cost0.2``: an N-way router (``nway:`` in the
  config, docs/nway-routing.md) ranks its models by predicted quality − λ · cost / max cost and
  calls the best, falling back down the ranking; λ >= 0 and finite (0: best predicted quality, large:
  cheapest). Under the rule ``within`` the number is τ in [0, 1] instead. A bare
  ``router-<name>`` of an N-way router uses its configured default λ;
- the strong or weak model's own name, or an N-way model's served name: skip routing and call that model.

Router names never contain ``-`` (they use ``_``, e.g. ``sw_ranking``), so the grammar is unambiguous.
Which suffixes a router takes depends on its kind: ``cost<λ>`` is for N-way routers only, a
threshold, ``strong<f>`` and ``usd<x>`` for two-model routers only (``ChatService.select``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, field_validator, model_validator

from routers.base import validate_threshold
from routers.errors import ConfigError

from deployments.errors import ModelNameError, ThresholdError
from deployments.openai_schema import check_chat_request

ROUTER_PREFIX = "router-"
STRONG_FRACTION_PREFIX = "strong"
USD_PER_HOUR_PREFIX = "usd"
COST_WEIGHT_PREFIX = "cost"
#: longest accepted model string
MAX_MODEL_NAME = 200


@dataclass(frozen=True)
class ModelSelection:
    """What a ``model`` string asks for: a router (with threshold or strong fraction) or a model."""

    router: str | None = None
    threshold: float | None = None
    strong_fraction: float | None = None
    usd_per_hour: float | None = None
    cost_weight: float | None = None  # λ of an N-way router (``cost<λ>``)
    direct_model: str | None = None

    @property
    def routed(self) -> bool:
        return self.router is not None


def _parse_unit_interval(text: str, what: str, model: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ModelNameError(
            f"{what} {text!r} in model {model!r} is not a number; use e.g. {example!r}", param="model"
        ) from None
    try:
        return validate_threshold(value)  # the library's one range check, for fractions too
    except ConfigError:
        raise ThresholdError(
            f"{what} {text!r} in model {model!r} is out of range; it must be in [0, 1], e.g. {example!r}",
            param="model",
        ) from None


def _parse_non_negative(text: str, model: str, what: str, example: str) -> float:
    """A finite number >= 0 from the spec of a model name (USD per hour, cost weight λ)."""
    try:
        value = float(text)
    except ValueError:
        raise ModelNameError(f"{what} {text!r} in model {model!r} is not a number; use e.g. {example!r}",
                             param="model") from None
    if not math.isfinite(value) or value < 0:
        raise ThresholdError(f"{what} {text!r} in model {model!r} must be a finite number >= 0, "
                             f"e.g. {example!r}", param="model")
    return value


_EXPONENT_SPEC = re.compile(r"(strong|usd|cost)?[0-9]*\.?[0-9]+[eE]-[0-9]+")


def parse_model_name(model: str, direct_models: tuple[str, ...] = ()) -> ModelSelection:
    """Parse ``model`` (see the module docstring). Raises ModelNameError / ThresholdError (400)."""
    if not isinstance(model, str) or not model.strip():
        raise ModelNameError("'model' must be a non-empty string such as 'router-mf-0.11593'", param="model")
    if len(model) > MAX_MODEL_NAME:
        raise ModelNameError(f"'model' is longer than {MAX_MODEL_NAME} characters", param="model")
    if model in direct_models:
        return ModelSelection(direct_model=model)
    if not model.startswith(ROUTER_PREFIX):
        known = ", ".join(repr(m) for m in direct_models)
        raise ModelNameError(
            f"model {model!r} is neither 'router-<name>[-<threshold>|-strong<fraction>]' "
            f"(e.g. 'router-mf-0.11593') nor one of the served models{': ' + known if known else ''}",
            param="model",
        )
    rest = model[len(ROUTER_PREFIX):]
    name, dash, spec = rest.partition("-")
    # the only '-' allowed after the name's is a float exponent's: router-mf-1e-05
    parts = [name, spec] if dash else [name]
    if spec.startswith(USD_PER_HOUR_PREFIX + "-"):
        raise ThresholdError(f"USD per hour {spec[len(USD_PER_HOUR_PREFIX):]!r} in model {model!r} must be >= 0, "
                             f"e.g. 'router-{name}-usd40'", param="model")
    if spec.startswith(COST_WEIGHT_PREFIX + "-"):
        raise ThresholdError(f"cost weight λ {spec[len(COST_WEIGHT_PREFIX):]!r} in model {model!r} must be a finite "
                             f"number >= 0, e.g. 'router-{name}-cost0.2'", param="model")
    if not name or (dash and (not spec or ("-" in spec and not _EXPONENT_SPEC.fullmatch(spec)))):
        raise ModelNameError(
            f"model {model!r} is malformed; expected 'router-<name>', 'router-<name>-<threshold>' "
            "'router-<name>-strong<fraction>', 'router-<name>-usd<per hour>' or 'router-<name>-cost<λ>' "
            "(router names use '_', never '-')",
            param="model",
        )
    name = parts[0]
    if len(parts) == 1:
        return ModelSelection(router=name)
    spec = parts[1]
    if spec.startswith(STRONG_FRACTION_PREFIX):
        frac = _parse_unit_interval(spec[len(STRONG_FRACTION_PREFIX):], "strong fraction", model,
                                    f"router-{name}-strong0.3")
        return ModelSelection(router=name, strong_fraction=frac)
    if spec.startswith(USD_PER_HOUR_PREFIX):
        usd = _parse_non_negative(spec[len(USD_PER_HOUR_PREFIX):], model, "USD per hour", f"router-{name}-usd40")
        return ModelSelection(router=name, usd_per_hour=usd)
    if spec.startswith(COST_WEIGHT_PREFIX):
        lam = _parse_non_negative(spec[len(COST_WEIGHT_PREFIX):], model, "cost weight λ", f"router-{name}-cost0.2")
        return ModelSelection(router=name, cost_weight=lam)
    thr = _parse_unit_interval(spec, "threshold", model, f"router-{name}-0.5")
    return ModelSelection(router=name, threshold=thr)


# --- requests ------------------------------------------------------------------------------------


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class OtherPart(BaseModel):
    """Non-text parts (images, audio, files): kept for the backend, left out of the routing text."""

    model_config = ConfigDict(extra="allow")
    type: str

    @field_validator("type")
    @classmethod
    def _not_text(cls, v: str) -> str:
        if v == "text":
            raise ValueError("a 'text' part needs a string 'text' field")
        return v


ContentPart = TextPart | OtherPart


class ChatMessage(BaseModel):
    """What the router reads of a message; the backend receives the message as the client sent it."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _content_needed(self) -> "ChatMessage":
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role!r} message needs 'content'")
        return self

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def part_types(self) -> set[str]:
        return {p.type for p in self.content} if isinstance(self.content, list) else set()


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request. The fields the router uses (``model``, ``messages``,
    ``stream``) and the sampling ranges are typed here; every field is also checked against the
    official SDK's schema (``deployments.openai_schema``), strictly; the body then goes to the chosen
    backend as sent, with ``model`` replaced (``backend_payload``). Fields the SDK does not know
    (a backend's own, such as vLLM's ``top_k``) pass through unchecked."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=MAX_MODEL_NAME, description="router-<name>[-<threshold>] or a model name")
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: StrictBool = False
    temperature: Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    n: Annotated[int, Field(ge=1, le=8)] = 1
    stop: str | list[str] | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0, allow_inf_nan=False)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0, allow_inf_nan=False)] | None = None
    _body: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _openai_schema(cls, data: Any, handler: Any) -> "ChatCompletionRequest":
        req = handler(data)  # the router's own fields first: their errors are the clearest
        check_chat_request(data)
        req._body = data
        return req

    @field_validator("stop")
    @classmethod
    def _stop(cls, v):
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @field_validator("messages")
    @classmethod
    def _has_user_text(cls, v: list[ChatMessage]) -> list[ChatMessage]:
        # a field validator (not a model one) so that the error names param "messages"
        if not any(m.role == "user" and m.text().strip() for m in v):
            raise ValueError("'messages' needs at least one user message with text (image-only or blank "
                             "content cannot be routed)")
        return v

    def routing_messages(self) -> list[dict[str, str]]:
        """What the router reads: the text of the user turns only. System and developer prompts,
        assistant turns and their tool calls, tool results, images and audio are left out, so a
        tool-using conversation routes on what its user last asked (``routers.base.routing_text``)."""
        return [{"role": "user", "content": m.text()} for m in self.messages if m.role == "user"]

    def body(self) -> dict[str, Any]:
        """The request as the client sent it."""
        return self._body

    def backend_payload(self, model: str) -> dict[str, Any]:
        """What the weak/strong replicas receive: the client's body with ``model`` = backend model."""
        return {**self._body, "model": model}


class RouteRequest(BaseModel):
    """POST /v1/route: the routing decision only. Give ``messages`` or ``prompt``."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=MAX_MODEL_NAME)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=1000)
    prompt: str | None = None
    #: N-way routers' cost estimate: completion tokens as the chat request would cap them
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _one_input(self) -> "RouteRequest":
        if self.messages is None and self.prompt is None:
            raise ValueError("give 'messages' (a chat) or 'prompt' (a string)")
        return self

    @field_validator("messages")
    @classmethod
    def _has_user_text(cls, v: list[ChatMessage] | None) -> list[ChatMessage] | None:
        if v is not None and not any(m.role == "user" and m.text().strip() for m in v):
            raise ValueError("'messages' needs at least one user message with text")
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt_text(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("'prompt' is empty")
        return v


class FeedbackRequest(BaseModel):
    """POST /v1/feedback: a verdict on an earlier routed answer, named by its ``x-request-id``.
    Give ``verdict`` ("up" / "down") or ``score`` in [0, 1] (1 = a good answer), not both."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    verdict: Literal["up", "down"] | None = None
    score: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_verdict(self) -> "FeedbackRequest":
        if (self.verdict is None) == (self.score is None):
            raise ValueError("give exactly one of 'verdict' (\"up\" or \"down\") and 'score' (a number in [0, 1])")
        return self

    def verdict_score(self) -> float:
        return float(self.score) if self.score is not None else (1.0 if self.verdict == "up" else 0.0)


# --- responses -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterVerdict:
    """A router's answer for one conversation (``RouterReplica.route``)."""

    p_strong: float
    threshold: float
    strong: bool
    cached: bool = False  # the score came from the replica's score cache


class RouteDecision(BaseModel):
    """The routing decision of one request, from ``ChatService.decide`` to the response: the body of
    ``POST /v1/route`` and the ``x-router*`` headers of a chat completion."""

    router: str  # "none" when the request named a model
    routed_model: str
    route: Literal["strong", "weak"]
    p_strong: float | None = None
    threshold: float | None = None
    strong_fraction: float | None = None
    #: budget control: the live target this decision served ("share=0.3", "usd_per_hour=40"), the
    #: strong share it held at the time, and the tenant (API key's) it was counted for
    budget_target: str | None = None
    budget_share: float | None = None
    tenant: str | None = Field(None, exclude=True)
    budget_key: str | None = Field(None, exclude=True)
    #: budget control: a tenant's daily cap sent this request weak
    budget_cap: str | None = Field(None, exclude=True)
    #: why the decision is not the router's (its replica failed), for the x-rayroute-fallback header
    fallback: str | None = Field(None, exclude=True)
    #: the features the weak model lacks that sent the request strong, for x-rayroute-capability
    capability: str | None = Field(None, exclude=True)


class NWayCandidate(BaseModel):
    """One model of an N-way ranking (``routers.nway.selection.Candidate``), as ``/v1/route`` reports it."""

    model: str                 # served name
    quality: float             # predicted quality in [0, 1]
    estimated_cost_usd: float  # this request on this model, from the estimated tokens and its price
    relative_cost: float       # cost / the priciest candidate's
    score: float               # quality − λ · relative_cost (rule "cost"); quality (rule "within")
    input_usd_per_1m_tokens: float | None = None   # the configured price the estimate used
    output_usd_per_1m_tokens: float | None = None


class NWayDecision(BaseModel):
    """An N-way routing decision: the body of ``POST /v1/route`` for an N-way name and the source of
    a chat completion's ``x-router*`` headers. ``candidates`` best first is the fallback order."""

    router: str  # "none" when the request named an N-way model directly
    routed_model: str
    rule: Literal["cost", "within"] = "cost"
    cost_weight: float | None = None  # λ (τ under rule "within")
    prompt_tokens: int | None = None  # the estimate the costs use
    completion_tokens: int | None = None
    candidates: list[NWayCandidate] = Field(default_factory=list)
    tenant: str | None = Field(None, exclude=True)
    budget_key: str | None = Field(None, exclude=True)  # no live target holds an N-way name
    #: a tenant's spent daily cap put the cheapest candidates first
    budget_cap: str | None = Field(None, exclude=True)
    #: the features the better ranked candidates lacked, so they were skipped (images, audio, tools)
    capability: str | None = Field(None, exclude=True)

    def chain(self, max_fallbacks: int) -> list[str]:
        """The models to try, in order: the chosen one and up to ``max_fallbacks`` next ones."""
        if not self.candidates:
            return [self.routed_model]
        return [c.model for c in self.candidates[: 1 + max_fallbacks]]

    def quality_of(self, model: str) -> float | None:
        return next((c.quality for c in self.candidates if c.model == model), None)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "rayroute"
    kind: Literal["router", "strong", "weak", "nway_router", "nway_model"] = "router"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

