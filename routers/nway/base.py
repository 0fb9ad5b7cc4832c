"""The contract of an N-way router: a predicted quality for every model of its vocabulary.

A ``QualityRouter`` maps a batch of prompts to an (n_prompts, n_models) array of predicted
quality in [0, 1] (for golden-labelled training data: P(the model answers correctly)). It does not
choose: ``routers.nway.selection`` turns qualities and prices into a ranking, in one place.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from routers.base import check_prompts
from routers.embeddings import Embedder
from routers.errors import CheckpointError, ConfigError, UnknownModelError
from routers.models.embedding_router import EmbeddingRouter


class QualityRouter(abc.ABC):
    """Predicts each model's quality on each prompt.

    Contract:
    - ``models``: the vocabulary, unique names, in column order.
    - ``predict(prompts)``: float64 array (len(prompts), len(models)) in [0, 1]; a prompt alone or
      inside a batch gives the same row; deterministic for a loaded router.
    - ``predict_for(prompts, models)``: the columns of the named models, in that order; an unknown
      name is ``UnknownModelError`` listing the known ones.
    - ``save(path)`` / ``load(path)``: a checkpoint directory (``config.json`` + weights).
    """

    name: ClassVar[str] = ""
    models: list[str]

    @abc.abstractmethod
    def predict_embeddings(self, prompts: Sequence[str], emb: np.ndarray) -> np.ndarray:
        """Predicted quality for prompts whose embeddings the caller already has (cross-fitting
        embeds once); routers that score on the embedding alone ignore ``prompts``."""

    def predict(self, prompts: Sequence[str]) -> np.ndarray:
        """Predicted quality, shape (len(prompts), len(self.models))."""
        prompts = check_prompts(prompts)
        return self.predict_embeddings(prompts, self._embed.embed(prompts))

    @abc.abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write a checkpoint directory that ``load`` reads; return its path."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path, **overrides: Any) -> "QualityRouter":
        """Load from a checkpoint directory written by ``save``."""

    def columns(self, models: Sequence[str]) -> list[int]:
        """Column indices of ``models``; UnknownModelError names the unknown ones and the known."""
        index = {m: i for i, m in enumerate(self.models)}
        unknown = [m for m in models if m not in index]
        if unknown:
            raise UnknownModelError(
                f"model(s) {unknown} are not in the {self.name or type(self).__name__} router's vocabulary; "
                f"known models: {', '.join(self.models)}")
        return [index[m] for m in models]

    def predict_for(self, prompts: Sequence[str], models: Sequence[str]) -> np.ndarray:
        """Predicted quality of the named models only, shape (len(prompts), len(models))."""
        cols = self.columns(models)
        return self.predict(prompts)[:, cols]

    def describe(self) -> dict[str, Any]:
        """Small JSON-able summary for logs and /v1/models."""
        return {"name": self.name, "models": list(self.models)}

    # --- checkpoints: the one layout of every N-way router ------------------------------------

    WEIGHTS_FILE: ClassVar[str] = "model.safetensors"

    def write_checkpoint(self, path: str | Path, arrays: dict[str, np.ndarray], **config: Any) -> Path:
        """``model.safetensors`` (``arrays`` as float32) and ``config.json`` (router name, models,
        ``config``), each written atomically."""
        from routers.models.embedding_router import save_arrays
        from routers.registry import write_config

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_arrays(path / self.WEIGHTS_FILE, {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
        write_config(path, {"router": self.name, "models": self.models, **config})
        return path

    @classmethod
    def read_checkpoint(cls, path: str | Path, arrays: Sequence[str]) -> tuple[Path, dict[str, Any], dict[str, np.ndarray]]:
        """(path, config, arrays) of a checkpoint written by ``write_checkpoint`` for this router;
        CheckpointError names the path and what is wrong."""
        from routers.models.embedding_router import load_arrays
        from routers.nway.registry import read_quality_config

        path = Path(path)
        cfg = read_quality_config(path)
        if cfg["router"] != cls.name:
            raise CheckpointError(f"{str(path)!r} holds a {cfg['router']!r} router, not {cls.name!r}")
        return path, cfg, load_arrays(path / cls.WEIGHTS_FILE, arrays)


def check_vocabulary(models: Sequence[str]) -> list[str]:
    """The model names as a list of unique non-empty strings, else ConfigError naming the problem."""
    out = [str(m) for m in models]
    if not out:
        raise ConfigError("an N-way router needs at least one model")
    if any(not m.strip() for m in out):
        raise ConfigError(f"model names must be non-empty, got {out}")
    dupes = sorted({m for m in out if out.count(m) > 1})
    if dupes:
        raise ConfigError(f"model names must be unique; repeated: {dupes}")
    return out


def check_outcomes(outcomes: np.ndarray, n_prompts: int, n_models: int) -> np.ndarray:
    """Training outcomes as float64 (n_prompts, n_models) in [0, 1]; NaN marks a missing outcome."""
    y = np.asarray(outcomes, dtype=np.float64)
    if y.shape != (n_prompts, n_models):
        raise ConfigError(f"outcomes must have shape ({n_prompts}, {n_models}), got {y.shape}")
    finite = y[~np.isnan(y)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ConfigError(f"outcomes must be in [0, 1] (or NaN for missing), got range "
                          f"[{finite.min():g}, {finite.max():g}]")
    return y


class EmbeddingPlumbing(EmbeddingRouter):
    """The embedding plumbing of ``EmbeddingRouter`` (lazy embedder from the checkpoint's name,
    dimension checks), reused by composition since a quality router is not a two-model Router.
    Every quality router keeps one as ``_embed``; ``owner`` names the router in error messages."""

    def __init__(self, embedder: Embedder | None, embedder_name: str | None, embedding_dim: int | None,
                 owner: str) -> None:
        super().__init__(embedder, embedder_name, embedding_dim)
        self.name = owner

    def check(self, emb: np.ndarray) -> np.ndarray:
        return self.check_embeddings(emb)

    def save(self, path):  # pragma: no cover - never saved on its own
        raise NotImplementedError

    @classmethod
    def load(cls, path, **overrides):  # pragma: no cover
        raise NotImplementedError


__all__ = ["EmbeddingPlumbing", "QualityRouter", "check_prompts", "check_outcomes", "check_vocabulary"]
