"""The paper's baseline: P(strong) drawn uniformly at random, seedable."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.base import Router, check_prompts
from routers.registry import read_config, write_config


class RandomRouter(Router):
    """Uniform P(strong) in [0, 1). With threshold α it sends ~(1-α) of traffic to the strong model.

    With ``per_prompt=True`` the score is a hash of the prompt and the seed, so single and batched
    calls agree and a prompt always routes the same way (useful for tests and caching); the default
    draws fresh randomness per call, as the paper's baseline does.
    """

    name = "random"
    needs_checkpoint = False

    def __init__(self, seed: int | None = 0, per_prompt: bool = False) -> None:
        self.seed = seed
        self.per_prompt = per_prompt
        self._rng = np.random.default_rng(seed)

    @property
    def deterministic(self) -> bool:  # fresh randomness per call must not be cached
        return self.per_prompt

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        if not self.per_prompt:
            return self._rng.random(len(prompts))
        import hashlib

        out = np.empty(len(prompts))
        for i, p in enumerate(prompts):
            digest = hashlib.blake2b(f"{self.seed}\x00{p}".encode(), digest_size=8).digest()
            out[i] = int.from_bytes(digest, "big") / 2**64
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        write_config(path, {"router": self.name, "seed": self.seed, "per_prompt": self.per_prompt})
        return path

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "RandomRouter":
        cfg = read_config(path)
        kwargs = {"seed": cfg.get("seed", 0), "per_prompt": cfg.get("per_prompt", False)}
        kwargs.update(overrides)
        return cls(**kwargs)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "per_prompt": self.per_prompt}
