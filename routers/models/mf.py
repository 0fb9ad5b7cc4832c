"""Matrix-factorization router (paper Eq. 11-12), scored with numpy only.

    δ(M, q) = w2ᵀ (v_M ⊙ (W1ᵀ v_q + b)),     P(M_a beats M_b | q) = σ(δ(M_a, q) − δ(M_b, q))

v_q is the prompt embedding (d_q), v_M a learned d_m-vector per model of the training data
(the vocabulary comes from the data), W1 (d_q × d_m), b (d_m) and w2 (d_m) shared. Training lives
in ``routers.training.mf`` (torch); this module never imports torch.

Scoring pair: ``strong`` / ``weak`` are any model of the vocabulary or any group name stored in
the checkpoint (tier groups such as ``strong``, ``weak``, ``tier0``). A group scores with the mean
of its members' vectors; δ is linear in v_M, so that equals the mean of the members' δ — a
"typical member of the tier". Because the pair is fixed while serving, the difference reduces to

    δ(s, q) − δ(w, q) = v_qᵀ u + c,   u = W1 (w2 ⊙ (v_s − v_w)),   c = w2ᵀ ((v_s − v_w) ⊙ b)

so a prompt costs one embedding and one dot product.

Checkpoint: ``config.json`` (models, groups, pair, embedder, shapes, training summary) and
``model.safetensors`` (W1, b, w2, model_vectors; float32, ~0.2 MB at d_q 384 / d_m 128).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.embeddings import Embedder
from routers.errors import CheckpointError, ConfigError, UnknownModelError
from routers.models.embedding_router import EmbeddingRouter, load_arrays, require, save_arrays
from routers.registry import read_config, write_config

WEIGHTS_FILE = "model.safetensors"
PARAM_NAMES = ("W1", "b", "w2", "model_vectors")


def sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so large |x| neither overflows exp nor loses precision near 0 / 1.
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


class MatrixFactorizationRouter(EmbeddingRouter):
    """P(strong wins | q) = σ(v_qᵀ u + c) for a fixed (strong, weak) pair of models or groups.

    ``params``: ``W1`` (d_q, d_m), ``b`` (d_m,), ``w2`` (d_m,), ``model_vectors`` (len(models), d_m).
    ``groups``: name -> list of model names (e.g. the tiers the model was trained with).
    Raises ConfigError for inconsistent shapes, UnknownModelError for an unknown pair name.
    """

    name = "mf"

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        models: Sequence[str],
        strong: str,
        weak: str,
        groups: Mapping[str, Sequence[str]] | None = None,
        embedder: Embedder | None = None,
        embedder_name: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        missing = [k for k in PARAM_NAMES if k not in params]
        if missing:
            raise ConfigError(f"MF parameters lack {missing}; expected {list(PARAM_NAMES)}")
        self.W1 = np.asarray(params["W1"], dtype=np.float64)
        self.b = np.asarray(params["b"], dtype=np.float64)
        self.w2 = np.asarray(params["w2"], dtype=np.float64)
        self.model_vectors = np.asarray(params["model_vectors"], dtype=np.float64)
        self.models = [str(m) for m in models]
        dq, dm = self.W1.shape if self.W1.ndim == 2 else (None, None)
        if (dm is None or self.b.shape != (dm,) or self.w2.shape != (dm,)
                or self.model_vectors.shape != (len(self.models), dm)):
            raise ConfigError(
                f"inconsistent MF shapes: W1 {self.W1.shape}, b {self.b.shape}, w2 {self.w2.shape}, "
                f"model_vectors {self.model_vectors.shape} for {len(self.models)} models"
            )
        if len(set(self.models)) != len(self.models):
            raise ConfigError("MF model names must be unique")
        self.groups = {str(k): [str(m) for m in v] for k, v in (groups or {}).items()}
        for g, members in self.groups.items():
            unknown = [m for m in members if m not in self.models]
            if unknown or not members:
                raise ConfigError(f"MF group {g!r} has no members or unknown members {unknown[:5]}")
        super().__init__(embedder, embedder_name, embedding_dim=dq)
        self.info = dict(info or {})
        self._index = {m: i for i, m in enumerate(self.models)}
        self.set_pair(strong, weak)

    # --- the scoring pair ---------------------------------------------------------------------

    def model_vector(self, name: str) -> np.ndarray:
        """v_M for a model, or the mean of a group's members' vectors."""
        if name in self._index:
            return self.model_vectors[self._index[name]]
        if name in self.groups:
            return self.model_vectors[[self._index[m] for m in self.groups[name]]].mean(axis=0)
        raise UnknownModelError(
            f"unknown model or tier {name!r} for the mf router; known groups: {sorted(self.groups)}; "
            f"known models: {sorted(self.models)}"
        )

    def set_pair(self, strong: str, weak: str) -> None:
        """Fix the (strong, weak) pair and precompute the reduced vector u and offset c."""
        d = self.model_vector(strong) - self.model_vector(weak)
        self.strong, self.weak = strong, weak
        self.u = self.W1 @ (self.w2 * d)
        self.c = float(self.w2 @ (d * self.b))

    # --- scoring ------------------------------------------------------------------------------

    def score_embeddings(self, emb: np.ndarray) -> np.ndarray:
        """P(strong wins) for precomputed prompt embeddings of shape (N, d_q)."""
        emb = self.check_embeddings(emb)
        # Row-wise multiply-and-sum instead of a BLAS mat-vec: BLAS may block a batch differently
        # from a single row, and batched scores must equal single-prompt scores bit for bit.
        return sigmoid((emb.astype(np.float64) * self.u).sum(axis=1) + self.c)

    def delta(self, emb: np.ndarray, name: str) -> np.ndarray:
        """δ(M, q) of Eq. 12 for every row of ``emb`` (full form, for checks and analysis)."""
        emb = self.check_embeddings(emb).astype(np.float64)
        return ((emb @ self.W1 + self.b) * self.model_vector(name)) @ self.w2

    def win_probability(self, emb: np.ndarray, a: str, b: str) -> np.ndarray:
        """P(a beats b | q) = σ(δ(a, q) − δ(b, q)) for any two known names (Eq. 11)."""
        return sigmoid(self.delta(emb, a) - self.delta(emb, b))

    # --- checkpoint ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_arrays(path / WEIGHTS_FILE, {
            "W1": self.W1.astype(np.float32), "b": self.b.astype(np.float32),
            "w2": self.w2.astype(np.float32), "model_vectors": self.model_vectors.astype(np.float32),
        })
        write_config(path, {
            "router": self.name, "models": self.models, "groups": self.groups,
            "strong": self.strong, "weak": self.weak, "embedder": self.embedder_name,
            "embedding_dim": int(self.W1.shape[0]), "dim": int(self.W1.shape[1]), "info": self.info,
        })
        return path

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, strong: str | None = None,
             weak: str | None = None, **overrides: Any) -> "MatrixFactorizationRouter":
        """Load a checkpoint; ``strong``/``weak`` override the stored pair (any known name)."""
        path = Path(path)
        cfg = read_config(path)
        if cfg["router"] != cls.name:
            raise CheckpointError(f"{str(path)!r} holds a {cfg['router']!r} router, not {cls.name!r}")
        if overrides:
            raise ConfigError(f"unknown mf option(s) {sorted(overrides)}; use embedder, strong, weak")
        arrays = load_arrays(path / WEIGHTS_FILE, PARAM_NAMES)
        try:
            router = cls(
                arrays, require(cfg, "models", path),
                strong or require(cfg, "strong", path), weak or require(cfg, "weak", path),
                groups=cfg.get("groups"), embedder=embedder,
                embedder_name=require(cfg, "embedder", path), info=cfg.get("info"),
            )
        except ConfigError as exc:
            raise CheckpointError(f"malformed mf checkpoint {str(path)!r}: {exc}") from exc
        return router

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "strong": self.strong, "weak": self.weak, "embedder": self.embedder_name,
                "n_models": len(self.models), "dim": int(self.W1.shape[1]), **{
                    k: self.info[k] for k in ("val_accuracy", "val_log_loss") if k in self.info}}
