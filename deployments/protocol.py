"""OpenAI chat-completions request/response models and the ``model`` string grammar.

Model names (what clients put in ``model``), RouteLLM-compatible:

- ``router-<name>-<threshold>``  e.g. ``router-mf-0.11593``: route with router ``<name>`` at cost
  threshold α in [0, 1] (strong when P(strong wins) >= α);
- ``router-<name>``               the router's configured default threshold;
- ``router-<name>-strong<f>``     e.g. ``router-mf-strong0.3``: aim for a strong-call fraction
  ``f`` in [0, 1]; the threshold comes from the router's start-up calibration;
- the strong or weak model's own name: skip routing and call that model.

Router names never contain ``-`` (they use ``_``, e.g. ``sw_ranking``), so the grammar is unambiguous.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from routers.base import validate_threshold
from routers.errors import ConfigError

from deployments.errors import ModelNameError, ThresholdError

ROUTER_PREFIX = "router-"
#: the sampling parameters passed through to both models as they are (``stop``, ``n`` and
#: ``max_tokens`` are passed too, each with its own handling)
SAMPLING_PARAMS = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
STRONG_FRACTION_PREFIX = "strong"
#: longest accepted model string
MAX_MODEL_NAME = 200


@dataclass(frozen=True)
class ModelSelection:
    """What a ``model`` string asks for: a router (with threshold or strong fraction) or a model."""

    router: str | None = None
    threshold: float | None = None
    strong_fraction: float | None = None
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


_EXPONENT_SPEC = re.compile(r"(strong)?[0-9]*\.?[0-9]+[eE]-[0-9]+")


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
    if not name or (dash and (not spec or ("-" in spec and not _EXPONENT_SPEC.fullmatch(spec)))):
        raise ModelNameError(
            f"model {model!r} is malformed; expected 'router-<name>', 'router-<name>-<threshold>' "
            "or 'router-<name>-strong<fraction>' (router names use '_', never '-')",
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
    thr = _parse_unit_interval(spec, "threshold", model, f"router-{name}-0.5")
    return ModelSelection(router=name, threshold=thr)


# --- requests ------------------------------------------------------------------------------------


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class OtherPart(BaseModel):
    """Non-text parts (images, audio, ...): accepted in the schema, ignored for routing."""

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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat-completions request that is served. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=MAX_MODEL_NAME, description="router-<name>[-<threshold>] or a model name")
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    n: Annotated[int, Field(ge=1, le=8)] = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0, allow_inf_nan=False)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0, allow_inf_nan=False)] | None = None
    user: str | None = None

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

    def effective_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def messages_as_dicts(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    def backend_payload(self, model: str) -> dict[str, Any]:
        """What the weak/strong replicas receive: plain JSON-able dict, ``model`` = backend model."""
        out: dict[str, Any] = {"model": model, "messages": self.messages_as_dicts(), "n": self.n}
        for key in (*SAMPLING_PARAMS, "stop"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.effective_max_tokens() is not None:
            out["max_tokens"] = self.effective_max_tokens()
        if self.stream_options and self.stream_options.include_usage:
            out["include_usage"] = True
        return out


class RouteRequest(BaseModel):
    """POST /v1/route: the routing decision only. Give ``messages`` or ``prompt``."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=MAX_MODEL_NAME)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=1000)
    prompt: str | None = None

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


# --- responses -----------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None


class Choice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: str | None = None


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=lambda: new_id())
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


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
    #: why the decision is not the router's (its replica failed), for the x-rayroute-fallback header
    fallback: str | None = Field(None, exclude=True)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "rayroute"
    kind: Literal["router", "strong", "weak"] = "router"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def new_id(prefix: str = "chatcmpl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
