"""Pointwise many-model matrix factorisation (paper Eq. 12, one quality per model), numpy at score time.

    quality(M, q) = σ(w2ᵀ (v_M ⊙ (W1ᵀ v_q + b)) + β_M)

v_q is the prompt embedding (d_q), v_M a learned d_m-vector per model, W1 (d_q × d_m), b (d_m) and
w2 (d_m) shared by all models, β_M a per-model offset (the model's overall accuracy). Eq. 12's δ is
the same expression without β_M; the two-model router (``routers.models.mf``) only ever uses
differences δ(a) − δ(b), where β_M would act as a constant shift. Predicting each model's quality
*directly* needs the offset: "MF gives it directly" (issue 19).

Why MF for N models: the prompt projection W1 is shared, so every model's outcomes teach which
prompts are hard; a model with few outcomes borrows that from the others. Training lives in
``routers.training.nway_mf`` (torch); this module never imports torch.

Checkpoint: ``config.json`` (router, models, embedder, shapes, training summary) and
``model.safetensors`` (W1, b, w2, model_vectors, model_bias; float32).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.embeddings import Embedder
from routers.errors import CheckpointError, ConfigError
from routers.models.embedding_router import require
from routers.models.mf import sigmoid
from routers.nway.base import EmbeddingPlumbing, QualityRouter, check_vocabulary

PARAM_NAMES = ("W1", "b", "w2", "model_vectors", "model_bias")


class MFQualityRouter(QualityRouter):
    """quality(M, q) = σ(w2ᵀ (v_M ⊙ (W1ᵀ v_q + b)) + β_M) for every model M of the vocabulary."""

    name = "mf"

    def __init__(self, params: Mapping[str, np.ndarray], models: Sequence[str], embedder: Embedder | None = None,
                 embedder_name: str | None = None, info: Mapping[str, Any] | None = None) -> None:
        missing = [k for k in PARAM_NAMES if k not in params]
        if missing:
            raise ConfigError(f"N-way MF parameters lack {missing}; expected {list(PARAM_NAMES)}")
        self.models = check_vocabulary(models)
        self.W1 = np.asarray(params["W1"], dtype=np.float64)
        self.b = np.asarray(params["b"], dtype=np.float64)
        self.w2 = np.asarray(params["w2"], dtype=np.float64)
        self.model_vectors = np.asarray(params["model_vectors"], dtype=np.float64)
        self.model_bias = np.asarray(params["model_bias"], dtype=np.float64)
        m = len(self.models)
        dq, dm = self.W1.shape if self.W1.ndim == 2 else (None, None)
        if (dm is None or self.b.shape != (dm,) or self.w2.shape != (dm,)
                or self.model_vectors.shape != (m, dm) or self.model_bias.shape != (m,)):
            raise ConfigError(
                f"inconsistent N-way MF shapes: W1 {self.W1.shape}, b {self.b.shape}, w2 {self.w2.shape}, "
                f"model_vectors {self.model_vectors.shape}, model_bias {self.model_bias.shape} for {m} models")
        # w2ᵀ (v_M ⊙ h) = hᵀ (w2 ⊙ v_M): one (d_m, m) matrix scores every model at once
        self._mix = (self.model_vectors * self.w2).T
        self._embed = EmbeddingPlumbing(embedder, embedder_name, dq, owner=self.name)
        self.embedder_name = self._embed.embedder_name
        self.info = dict(info or {})

    def predict_embeddings(self, prompts: Sequence[str] | None, emb: np.ndarray) -> np.ndarray:
        """Predicted quality (n, m) for precomputed prompt embeddings (n, d_q); scores on ``emb`` alone."""
        emb = self._embed.check(emb).astype(np.float64)
        if emb.shape[0] == 0:
            return np.zeros((0, len(self.models)))
        # einsum without BLAS blocking: a prompt alone and inside a batch get the same numbers
        h = np.einsum("nd,dk->nk", emb, self.W1, optimize=False) + self.b
        return sigmoid(np.einsum("nk,km->nm", h, self._mix, optimize=False) + self.model_bias)

    def save(self, path: str | Path) -> Path:
        return self.write_checkpoint(
            path, {"W1": self.W1, "b": self.b, "w2": self.w2, "model_vectors": self.model_vectors,
                   "model_bias": self.model_bias},
            embedder=self.embedder_name, embedding_dim=int(self.W1.shape[0]), dim=int(self.W1.shape[1]), info=self.info)

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, **overrides: Any) -> "MFQualityRouter":
        path, cfg, arrays = cls.read_checkpoint(path, PARAM_NAMES)
        if overrides:
            raise ConfigError(f"the N-way mf router takes no load options besides embedder, got {sorted(overrides)}")
        try:
            return cls(arrays, require(cfg, "models", path), embedder=embedder,
                       embedder_name=require(cfg, "embedder", path), info=cfg.get("info"))
        except ConfigError as exc:
            raise CheckpointError(f"malformed N-way mf checkpoint {str(path)!r}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "embedder": self.embedder_name, "dim": int(self.W1.shape[1])}
