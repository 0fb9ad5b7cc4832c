"""The router contract and the one place where the threshold rule (paper Eq. 2) lives."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from routers.errors import ConfigError


def validate_threshold(threshold: float) -> float:
    """Return ``threshold`` as a float if it is a finite number in [0, 1], else raise ConfigError."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ConfigError(f"threshold must be a number in [0, 1], got {threshold!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold!r}")
    return value


def strong_mask(p_strong: np.ndarray | Sequence[float], threshold: float) -> np.ndarray:
    """Paper Eq. 2: route to the strong model where P(strong wins | q) >= threshold.

    This is the only implementation of the rule; the server, calibration and evaluation all call it.
    """
    alpha = validate_threshold(threshold)
    return np.asarray(p_strong, dtype=np.float64) >= alpha


def routing_text(messages: Sequence[dict[str, Any]] | str, mode: str = "last_user") -> str:
    """The text a router sees for a conversation (the paper routes on the last user turn).

    ``messages`` is an OpenAI-style list of ``{"role", "content"}`` dicts (content a string or a
    list of parts, whose ``text`` parts are joined) or a plain string. ``mode``:
    ``last_user`` (default) or ``all_user`` (every user turn joined by blank lines).
    Raises ConfigError when there is no user text.
    """
    if isinstance(messages, str):
        return messages
    if mode not in ("last_user", "all_user"):
        raise ConfigError(f"routing text mode must be 'last_user' or 'all_user', got {mode!r}")
    texts = []
    for m in messages:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = "\n".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        else:
            text = ""
        if text.strip():
            texts.append(text)
    if not texts:
        raise ConfigError("the conversation has no user message with text to route on")
    return texts[-1] if mode == "last_user" else "\n\n".join(texts)


class Router(abc.ABC):
    """Predicts P(strong model wins | prompt) for a batch of prompts.

    Contract:
    - ``score(prompts)`` takes a sequence of N prompt strings (the text to route on, see
      ``routing_text`` for conversations) and returns a float64 array of shape
      (N,) with values in [0, 1]. Scoring a prompt alone or inside a batch gives the same value.
    - Scoring is deterministic for a loaded router, except ``random`` (seedable).
    - ``save(path)`` writes ``config.json`` plus weights; ``routers.registry.load_router`` reads it.
    - Routers do not apply the threshold: ``route`` (final) calls ``strong_mask``.
    """

    #: Registry name, e.g. "mf". Set by each subclass.
    name: ClassVar[str] = ""

    #: True when a prompt's score depends only on the prompt and the loaded router, so a caller may
    #: reuse a score it computed before (the serving score cache does). ``random`` overrides it.
    deterministic: bool = True

    @abc.abstractmethod
    def score(self, prompts: Sequence[str]) -> np.ndarray:
        """Return P(strong wins | prompt) for each prompt, shape (len(prompts),)."""

    def route(self, prompts: Sequence[str], threshold: float) -> np.ndarray:
        """Boolean mask, True where the prompt goes to the strong model (Eq. 2)."""
        return strong_mask(self.score(prompts), threshold)

    @abc.abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write a checkpoint directory that ``load`` can read; return its path."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path, **overrides: Any) -> "Router":
        """Load from a checkpoint directory written by ``save``."""

    def describe(self) -> dict[str, Any]:
        """Small JSON-able summary for logs, /v1/models and reports."""
        return {"name": self.name}


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """Validate a batch of prompts; routers call this first so bad input fails the same way."""
    if isinstance(prompts, str):
        raise ConfigError("score() takes a sequence of prompts, got a single str; wrap it in a list")
    out = list(prompts)
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise ConfigError(f"prompt {i} must be a str, got {type(p).__name__}")
    return out
