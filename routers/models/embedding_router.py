"""Shared plumbing of the routers that score on a prompt embedding (mf, sw_ranking).

- ``EmbeddingRouter``: takes an injected ``Embedder`` or builds the one its checkpoint names,
  lazily (on the first ``score``), so loading a checkpoint never loads a transformer by itself.
- ``save_arrays`` / ``load_arrays``: safetensors files with a clear ``CheckpointError`` for a
  missing, unreadable or incomplete weights file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.base import Router, check_prompts
from routers.embeddings import Embedder, embedder_from_spec
from routers.errors import CheckpointError, ConfigError, EmbeddingError


class EmbeddingRouter(Router):
    """A router scoring from an embedding: ``score(prompts) = score_embeddings(embed(prompts))``."""

    def __init__(self, embedder: Embedder | None = None, embedder_name: str | None = None,
                 embedding_dim: int | None = None) -> None:
        self._embedder = embedder
        self.embedder_name = embedder_name or (embedder.name if embedder is not None else None)
        self.embedding_dim = embedding_dim

    @property
    def embedder(self) -> Embedder:
        """The injected embedder, else the one named in the checkpoint, built on first use."""
        if self._embedder is None:
            self._embedder = embedder_from_spec(self.embedder_name)
        return self._embedder

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        if not prompts:
            return np.zeros((0, self.embedding_dim or 0), dtype=np.float32)
        emb = np.asarray(self.embedder.embed(prompts), dtype=np.float32)
        if self.embedding_dim is not None and emb.shape[1] != self.embedding_dim:
            raise EmbeddingError(
                f"embedder {self.embedder.name!r} gives {emb.shape[1]}-dim vectors but this {self.name} "
                f"router was trained on {self.embedding_dim}-dim {self.embedder_name!r} embeddings; "
                f"use the embedder it was trained with"
            )
        return emb

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        return self.score_embeddings(self.embed(prompts))

    def score_embeddings(self, emb: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_embeddings(self, emb: np.ndarray) -> np.ndarray:
        emb = np.asarray(emb, dtype=np.float32)
        if emb.ndim != 2 or (self.embedding_dim is not None and emb.shape[1] != self.embedding_dim):
            raise ConfigError(
                f"embeddings must have shape (N, {self.embedding_dim}), got {emb.shape}; "
                f"embed with {self.embedder_name!r}"
            )
        return emb


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    tmp.chmod(0o644)  # readable by the serving user, like config.json
    tmp.replace(path)


def load_arrays(path: Path, required: Sequence[str]) -> dict[str, np.ndarray]:
    """Read a safetensors file; CheckpointError names the file and what is wrong."""
    from safetensors.numpy import load_file

    if not path.is_file():
        raise CheckpointError(f"checkpoint weights {str(path)!r} are missing; re-run the train command")
    try:
        arrays = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for truncated / garbage files
        raise CheckpointError(f"cannot read checkpoint weights {str(path)!r}: {exc}") from exc
    missing = [k for k in required if k not in arrays]
    if missing:
        raise CheckpointError(f"checkpoint weights {str(path)!r} lack tensor(s) {missing}; re-run the train command")
    return arrays


def require(cfg: dict[str, Any], key: str, path: Path) -> Any:
    if key not in cfg:
        raise CheckpointError(f"{str(path / 'config.json')!r} lacks the field {key!r}; re-run the train command")
    return cfg[key]
