"""A baseline that routes on prompt length only: longer prompts go to the strong model.

P(strong) = 1 - 2^(-chars / median_chars): 0 for an empty prompt, 0.5 at ``median_chars``
characters, approaching 1 for very long prompts. It is strictly increasing in the length, so as a
ranking it is exactly "sort by length"; ``median_chars`` only moves where a given threshold α cuts.
The evaluation reports it next to ``random`` to show how much of a learned router's gain a
trivial feature already explains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.base import Router, check_prompts
from routers.errors import CheckpointError, ConfigError
from routers.registry import read_config, write_config

#: Default scale: roughly the median length (characters) of the prompts in the shared training mix.
DEFAULT_MEDIAN_CHARS = 256.0


class LengthRouter(Router):
    """P(strong) = 1 - 2^(-len(prompt) / median_chars); needs no checkpoint."""

    name = "length"
    needs_checkpoint = False

    def __init__(self, median_chars: float = DEFAULT_MEDIAN_CHARS) -> None:
        try:
            value = float(median_chars)
        except (TypeError, ValueError):
            raise ConfigError(f"median_chars must be a positive number, got {median_chars!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"median_chars must be a positive finite number, got {median_chars!r}")
        self.median_chars = value

    @classmethod
    def fit(cls, prompts: Sequence[str]) -> "LengthRouter":
        """Set ``median_chars`` to the median length of ``prompts`` (so half of them score >= 0.5)."""
        prompts = check_prompts(prompts)
        if not prompts:
            raise ConfigError("LengthRouter.fit needs at least one prompt")
        return cls(max(1.0, float(np.median([len(p) for p in prompts]))))

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        chars = np.array([len(p) for p in prompts], dtype=np.float64)
        return 1.0 - np.exp2(-chars / self.median_chars)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        write_config(path, {"router": self.name, "median_chars": self.median_chars})
        return path

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "LengthRouter":
        cfg = read_config(path)
        if cfg["router"] != cls.name:
            raise CheckpointError(f"{str(path)!r} holds a {cfg['router']!r} router, not {cls.name!r}")
        kwargs = {"median_chars": cfg.get("median_chars", DEFAULT_MEDIAN_CHARS)}
        kwargs.update(overrides)
        return cls(**kwargs)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "median_chars": self.median_chars}
