"""kNN quality router (RouterBench's kNN baseline): a model's predicted quality on a prompt is its
mean outcome on the k most similar training prompts (cosine similarity of embeddings).

Missing outcomes (NaN: a model not run on a training prompt) are skipped; a model with no outcome
among the k neighbours falls back to its mean over all training prompts.

Checkpoint: ``config.json`` (router, models, k, embedder, embedding_dim) and ``model.safetensors``
(``embeddings`` (N, d) float32, L2-normalised; ``outcomes`` (N, m) float32 with NaN).
Stores the training prompts' embeddings, never their text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.base import check_prompts
from routers.embeddings import Embedder
from routers.embeddings.common import l2_normalize
from routers.errors import CheckpointError, ConfigError
from routers.models.embedding_router import require
from routers.nway.base import EmbeddingPlumbing, QualityRouter, check_outcomes, check_vocabulary


class KNNQualityRouter(QualityRouter):
    """quality(q, M) = mean outcome of M over the k training prompts nearest to q."""

    name = "knn"

    def __init__(self, embeddings: np.ndarray, outcomes: np.ndarray, models: Sequence[str], k: int = 10,
                 embedder: Embedder | None = None, embedder_name: str | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.models = check_vocabulary(models)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] == 0:
            raise ConfigError(f"kNN needs a non-empty (N, d) embedding matrix, got shape {emb.shape}")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        self.embeddings = l2_normalize(emb).astype(np.float32)
        self.outcomes = check_outcomes(outcomes, emb.shape[0], len(self.models))
        self.k = int(min(k, emb.shape[0]))
        have = ~np.isnan(self.outcomes)
        # a model's mean outcome over all training prompts (0 for a model with none)
        self.prior = np.where(have, self.outcomes, 0.0).sum(axis=0) / np.maximum(have.sum(axis=0), 1)
        self._embed = EmbeddingPlumbing(embedder, embedder_name, emb.shape[1], owner=self.name)
        self.embedder_name = self._embed.embedder_name
        self.info = dict(info or {})

    @classmethod
    def fit(cls, prompts: Sequence[str], outcomes: np.ndarray, models: Sequence[str], embedder: Embedder,
            k: int = 10, info: dict[str, Any] | None = None) -> "KNNQualityRouter":
        """Embed ``prompts`` with ``embedder`` and keep them with their outcomes."""
        prompts = check_prompts(prompts)
        emb = np.asarray(embedder.embed(prompts), dtype=np.float32)
        return cls(emb, outcomes, models, k=k, embedder=embedder, info=info)

    def predict_embeddings(self, prompts: Sequence[str] | None, emb: np.ndarray) -> np.ndarray:
        """Mean outcome of the k nearest training prompts; scores on ``emb`` alone."""
        emb = l2_normalize(self._embed.check(emb))
        if emb.shape[0] == 0:
            return np.zeros((0, len(self.models)))
        sim = emb @ self.embeddings.T                                   # (n, N)
        k = self.k
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else \
            np.broadcast_to(np.arange(sim.shape[1]), sim.shape)
        y = self.outcomes[top]                                          # (n, k, m)
        have = ~np.isnan(y)
        total = np.where(have, y, 0.0).sum(axis=1)
        count = have.sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), self.prior[None, :])

    def save(self, path: str | Path) -> Path:
        return self.write_checkpoint(path, {"embeddings": self.embeddings, "outcomes": self.outcomes}, k=self.k,
                                     embedder=self.embedder_name, embedding_dim=int(self.embeddings.shape[1]),
                                     info=self.info)

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, **overrides: Any) -> "KNNQualityRouter":
        path, cfg, arrays = cls.read_checkpoint(path, ("embeddings", "outcomes"))
        unknown = sorted(set(overrides) - {"k"})
        if unknown:
            raise ConfigError(f"unknown knn option(s) {unknown}; use embedder, k")
        try:
            return cls(arrays["embeddings"], arrays["outcomes"], require(cfg, "models", path),
                       k=int(overrides.get("k", require(cfg, "k", path))), embedder=embedder,
                       embedder_name=require(cfg, "embedder", path), info=cfg.get("info"))
        except ConfigError as exc:
            raise CheckpointError(f"malformed knn checkpoint {str(path)!r}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "k": self.k, "embedder": self.embedder_name,
                "n_train": int(self.embeddings.shape[0])}


#: the k values ``choose_k`` picks from
K_GRID = (5, 10, 20, 40)


def choose_k(emb: np.ndarray, outcomes: np.ndarray, seed: int = 0, folds: int = 3) -> tuple[int, dict[str, float]]:
    """The k of ``K_GRID`` with the lowest Brier score in a ``folds``-fold CV inside these training
    rows only (never the evaluation folds), and every k's score. Brier, not log-loss: a mean of few
    0/1 outcomes is often exactly 0 or 1, which log-loss punishes without bound."""
    emb = np.asarray(emb, dtype=np.float32)
    y = np.asarray(outcomes, dtype=np.float64)
    fold = np.random.default_rng(seed).permutation(len(emb)) % folds
    if len(emb) < 2 * max(K_GRID):
        return min(10, len(emb)), {}
    err = {k: 0.0 for k in K_GRID}
    models = [str(j) for j in range(y.shape[1])]
    for f in range(folds):
        tr, va = fold != f, fold == f
        for k in K_GRID:
            q = KNNQualityRouter(emb[tr], y[tr], models, k=k).predict_embeddings(None, emb[va])
            err[k] += float(np.nanmean((q - y[va]) ** 2)) / folds
    best = min(K_GRID, key=lambda k: (err[k], k))
    return best, {str(k): round(v, 6) for k, v in err.items()}
