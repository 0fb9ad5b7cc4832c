"""Per-model head quality router: one calibrated ridge regression per model (RouterBench's
per-model predictor baselines, in their simplest regularised form).

    z_M(q) = [v_q, surface(q)] · β_M + c_M          ridge on the model's outcomes (0/1 or [0, 1])
    quality(M, q) = σ(a_M · z_M(q) + b_M)          Platt scaling on the model's training outcomes

Why a ridge and not a logistic fit: the closed form is exact, needs no iterations and costs one
(d × d) solve per model, so cross-fitting 11 models × 5 folds × 3 seeds takes seconds; Platt
scaling then maps the linear score to a probability. The features are those of the served linear
router's embedding part (``routers.features.surface_features``: length, numbers, operators, ...).
Missing outcomes (NaN) leave that row out of that model's fit only. The penalty is chosen from
``ALPHAS`` by a 3-fold CV inside the training prompts (``alpha="cv"``, the default), never on the
data a router is evaluated on.

Checkpoint: ``config.json`` (router, models, embedder, embedding_dim, alpha) and
``model.safetensors`` (``coef`` (m, d + 6), ``bias`` (m,), ``calib`` (m, 2); float32).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.base import check_prompts
from routers.embeddings import Embedder
from routers.errors import CheckpointError, ConfigError
from routers.features import N_SURFACE, surface_features
from routers.models.embedding_router import require
from routers.models.linear import platt
from routers.models.mf import sigmoid
from routers.nway.base import EmbeddingPlumbing, QualityRouter, check_outcomes, check_vocabulary

#: ridge penalty when none is given (the served linear router's embedding-part default)
DEFAULT_ALPHA = 10.0
#: the penalties ``alpha="cv"`` chooses from, by 3-fold CV on the training prompts only
ALPHAS = (1.0, 10.0, 100.0, 1000.0)


def head_features(prompts: Sequence[str], emb: np.ndarray) -> np.ndarray:
    """[embedding, surface features]: shape (n, d + N_SURFACE), float64."""
    return np.hstack([np.asarray(emb, dtype=np.float64), surface_features(list(prompts))])


class HeadQualityRouter(QualityRouter):
    """quality(M, q) = σ(a_M · ([v_q, surface(q)] · β_M + c_M) + b_M), one head per model."""

    name = "head"

    def __init__(self, coef: np.ndarray, bias: np.ndarray, calib: np.ndarray, models: Sequence[str],
                 alpha: float = DEFAULT_ALPHA, embedder: Embedder | None = None,
                 embedder_name: str | None = None, info: dict[str, Any] | None = None) -> None:
        self.models = check_vocabulary(models)
        m = len(self.models)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64).reshape(-1)
        self.calib = np.asarray(calib, dtype=np.float64)
        if (self.coef.ndim != 2 or self.coef.shape[0] != m or self.coef.shape[1] <= N_SURFACE
                or self.bias.shape != (m,) or self.calib.shape != (m, 2)):
            raise ConfigError(f"inconsistent head shapes: coef {self.coef.shape}, bias {self.bias.shape}, "
                              f"calib {self.calib.shape} for {m} models (coef needs (m, d + {N_SURFACE}))")
        self.alpha = float(alpha)
        self._embed = EmbeddingPlumbing(embedder, embedder_name, self.coef.shape[1] - N_SURFACE, owner=self.name)
        self.embedder_name = self._embed.embedder_name
        self.info = dict(info or {})

    @classmethod
    def fit_embeddings(cls, prompts: Sequence[str], emb: np.ndarray, outcomes: np.ndarray,
                       models: Sequence[str], alpha: float | str = "cv", embedder: Embedder | None = None,
                       embedder_name: str | None = None, info: dict[str, Any] | None = None,
                       seed: int = 0) -> "HeadQualityRouter":
        """Fit every model's head on precomputed embeddings (cross-fitting embeds once).

        ``alpha``: the ridge penalty, or ``"cv"``: the one of ``ALPHAS`` with the lowest Brier score
        in a 3-fold CV *inside* these training prompts (seeded by ``seed``)."""
        prompts = check_prompts(prompts)
        models = check_vocabulary(models)
        x = head_features(prompts, emb)
        y = check_outcomes(outcomes, len(prompts), len(models))
        cv_scores = None
        if alpha == "cv":
            alpha, cv_scores = _choose_alpha(x, y, seed)
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise ConfigError(f"the head's ridge penalty alpha must be a number > 0 or 'cv', got {alpha!r}") from None
        if not np.isfinite(alpha) or alpha <= 0:
            raise ConfigError(f"the head's ridge penalty alpha must be > 0 (or 'cv'), got {alpha!r}")
        coef, bias, calib = _fit_heads(x, y, (alpha,))[alpha]
        info = {**(info or {}), "alpha": alpha, **({"alpha_cv_brier": cv_scores} if cv_scores else {})}
        return cls(coef, bias, calib, models, alpha=alpha, embedder=embedder,
                   embedder_name=embedder_name or (embedder.name if embedder is not None else None), info=info)

    @classmethod
    def fit(cls, prompts: Sequence[str], outcomes: np.ndarray, models: Sequence[str], embedder: Embedder,
            alpha: float | str = "cv", info: dict[str, Any] | None = None) -> "HeadQualityRouter":
        """Embed ``prompts`` with ``embedder`` and fit (``fit_embeddings``)."""
        prompts = check_prompts(prompts)
        emb = np.asarray(embedder.embed(prompts), dtype=np.float32)
        return cls.fit_embeddings(prompts, emb, outcomes, models, alpha=alpha, embedder=embedder, info=info)

    def predict_embeddings(self, prompts: Sequence[str], emb: np.ndarray) -> np.ndarray:
        """Predicted quality for prompts whose embeddings the caller already has."""
        prompts = check_prompts(prompts)
        emb = self._embed.check(emb)
        if len(prompts) != emb.shape[0]:
            raise ConfigError(f"{len(prompts)} prompts but {emb.shape[0]} embeddings")
        if not prompts:
            return np.zeros((0, len(self.models)))
        x = head_features(prompts, emb)
        # row-wise products (not one BLAS matmul) so a prompt alone and inside a batch score alike
        z = np.einsum("nd,md->nm", x, self.coef, optimize=False) + self.bias
        return sigmoid(self.calib[:, 0] * z + self.calib[:, 1])

    def save(self, path: str | Path) -> Path:
        return self.write_checkpoint(
            path, {"coef": self.coef, "bias": self.bias, "calib": self.calib}, alpha=self.alpha,
            embedder=self.embedder_name, embedding_dim=int(self.coef.shape[1] - N_SURFACE), info=self.info)

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, **overrides: Any) -> "HeadQualityRouter":
        path, cfg, arrays = cls.read_checkpoint(path, ("coef", "bias", "calib"))
        if overrides:
            raise ConfigError(f"the head router takes no load options besides embedder, got {sorted(overrides)}")
        try:
            return cls(arrays["coef"], arrays["bias"], arrays["calib"], require(cfg, "models", path),
                       alpha=float(cfg.get("alpha", DEFAULT_ALPHA)), embedder=embedder,
                       embedder_name=require(cfg, "embedder", path), info=cfg.get("info"))
        except ConfigError as exc:
            raise CheckpointError(f"malformed head checkpoint {str(path)!r}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "alpha": self.alpha, "embedder": self.embedder_name}


# --- fitting ------------------------------------------------------------------------------------


def _fit_heads(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> dict[float, tuple]:
    """(coef, bias, calib) per alpha. Ridge with an unpenalised intercept through one eigen-
    decomposition of the centred Gram matrix per missing-outcome pattern, so every alpha and every
    model sharing the pattern cost one (d × d) product, not one solve each."""
    n_models = y.shape[1]
    out = {a: (np.zeros((n_models, x.shape[1])), np.zeros(n_models), np.zeros((n_models, 2))) for a in alphas}
    have = ~np.isnan(y)
    patterns: dict[bytes, list[int]] = {}
    for j in range(n_models):
        patterns.setdefault(have[:, j].tobytes(), []).append(j)
    for cols in patterns.values():
        rows = have[:, cols[0]]
        xs, ys = x[rows], y[rows][:, cols]
        for j_local, j in enumerate(cols):
            yj = ys[:, j_local]
            if len(yj) < 2 or np.ptp(yj) == 0:
                # nothing to regress on: a constant head at the model's (smoothed) mean outcome (0.5 if none)
                mean = float(np.clip(yj.mean(), 1e-4, 1 - 1e-4)) if yj.size else 0.5
                for a in alphas:
                    out[a][2][j] = (0.0, float(np.log(mean / (1 - mean))))
        live = [j for j_local, j in enumerate(cols) if len(ys) >= 2 and np.ptp(ys[:, j_local]) > 0]
        if not live:
            continue
        yl = y[rows][:, live]
        xm, ym = xs.mean(0), yl.mean(0)
        xc = xs - xm
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        proj = evecs.T @ (xc.T @ (yl - ym))                     # (d, k)
        for a in alphas:
            coef = evecs @ (proj / (np.maximum(evals, 0) + a)[:, None])   # (d, k)
            bias = ym - xm @ coef
            for i, j in enumerate(live):
                out[a][0][j], out[a][1][j] = coef[:, i], bias[i]
                out[a][2][j] = platt(xs @ coef[:, i] + bias[i], yl[:, i], np.ones(len(yl)))
    return out


def _predict(x: np.ndarray, head: tuple) -> np.ndarray:
    coef, bias, calib = head
    return sigmoid(calib[:, 0] * (x @ coef.T + bias) + calib[:, 1])


def _choose_alpha(x: np.ndarray, y: np.ndarray, seed: int, k: int = 3) -> tuple[float, dict[str, float]]:
    """The alpha of ``ALPHAS`` with the lowest mean Brier score over k inner folds of these rows."""
    fold = np.random.default_rng(seed).permutation(len(x)) % k
    if len(x) < 3 * k:
        return DEFAULT_ALPHA, {}
    err = {a: 0.0 for a in ALPHAS}
    for f in range(k):
        heads = _fit_heads(x[fold != f], y[fold != f], ALPHAS)
        yv = y[fold == f]
        for a in ALPHAS:
            err[a] += float(np.nanmean((_predict(x[fold == f], heads[a]) - yv) ** 2)) / k
    best = min(ALPHAS, key=lambda a: (err[a], a))
    return best, {str(a): round(v, 6) for a, v in err.items()}
