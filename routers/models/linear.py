"""The linear router: two ridge regressions on the prompt text, summed, then calibrated.

    t(q) = tfidf(q) · β_t + c_t               word 1-2-gram TF-IDF, 2^bits hashed buckets
    e(q) = [v_q, surface(q)] · β_e + c_e      prompt embedding + six surface counts
    z(q) = (t − μ_t) / σ_t + (e − μ_e) / σ_e  each part standardised on its training predictions
    P(strong better | q) = σ(a · z + b)       Platt scaling on the training targets

Why two parts: word n-grams carry topic and task words ("prove", "integral", "def") that transfer
across benchmarks, while the embedding carries the meaning of paraphrases; on the golden outcomes
each part alone routes worse than their sum (results/quality). Both are ridge regressions of the
target P(strong better) = 0.5 + (strong − weak score) / 2, which for 0/1 correctness is 1, 0.5
or 0, so the ranking is the expected quality gain of sending the prompt to the strong model.

``fit_linear`` trains one from (prompts, embeddings, targets, weights); ``routers.training.linear``
builds the committed checkpoints. Scoring is numpy + a scipy sparse product (no torch): ~1 ms per
prompt for the static embedder. Checkpoint: ``config.json`` + ``model.safetensors`` (IDF and
coefficients, float32).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.base import check_prompts
from routers.embeddings import Embedder
from routers.errors import ConfigError
from routers.features import N_SURFACE, HashedTfidf, surface_features
from routers.models.embedding_router import EmbeddingRouter, load_arrays, require, save_arrays
from routers.models.mf import sigmoid
from routers.registry import read_config, write_config

WEIGHTS_FILE = "model.safetensors"
ARRAYS = ("idf", "text_coef", "emb_coef")
SCALARS = ("text_bias", "emb_bias", "text_mean", "text_std", "emb_mean", "emb_std", "calib_a", "calib_b")


class LinearRouter(EmbeddingRouter):
    """P(strong better | q) from hashed word n-grams and a prompt embedding (module docstring)."""

    name = "linear"

    def __init__(self, arrays: dict[str, np.ndarray], scalars: dict[str, float], bits: int = 18,
                 embedder: Embedder | None = None, embedder_name: str | None = None,
                 info: dict[str, Any] | None = None) -> None:
        missing = [k for k in ARRAYS if k not in arrays] + [k for k in SCALARS if k not in scalars]
        if missing:
            raise ConfigError(f"linear router parameters lack {missing}")
        self.tfidf = HashedTfidf(bits, idf=arrays["idf"])
        self.text_coef = np.asarray(arrays["text_coef"], dtype=np.float64)
        self.emb_coef = np.asarray(arrays["emb_coef"], dtype=np.float64)
        if self.text_coef.shape != (2 ** bits,):
            raise ConfigError(f"text_coef has shape {self.text_coef.shape}, expected ({2 ** bits},)")
        if self.emb_coef.ndim != 1 or self.emb_coef.shape[0] <= N_SURFACE:
            raise ConfigError(f"emb_coef must be a vector longer than {N_SURFACE}, got shape {self.emb_coef.shape}")
        self.scalars = {k: float(scalars[k]) for k in SCALARS}
        if self.scalars["text_std"] <= 0 or self.scalars["emb_std"] <= 0:
            raise ConfigError("linear router: text_std and emb_std must be > 0")
        super().__init__(embedder, embedder_name, embedding_dim=self.emb_coef.shape[0] - N_SURFACE)
        self.bits = bits
        self.info = dict(info or {})

    # --- scoring ------------------------------------------------------------------------------

    def parts(self, prompts: Sequence[str], emb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The two raw ridge outputs (text part, embedding part) before standardising."""
        prompts = check_prompts(prompts)
        emb = self.embed(prompts) if emb is None else self.check_embeddings(emb)
        s = self.scalars
        t = self.tfidf.dot(prompts, self.text_coef) + s["text_bias"]
        e = np.hstack([emb.astype(np.float64), surface_features(prompts)]) @ self.emb_coef + s["emb_bias"]
        return t, e

    def decision(self, prompts: Sequence[str], emb: np.ndarray | None = None) -> np.ndarray:
        """z(q): the uncalibrated sum of the standardised parts (a ranking score)."""
        t, e = self.parts(prompts, emb)
        s = self.scalars
        return (t - s["text_mean"]) / s["text_std"] + (e - s["emb_mean"]) / s["emb_std"]

    def score_with_embeddings(self, prompts: Sequence[str], emb: np.ndarray) -> np.ndarray:
        """Score prompts whose embeddings the caller already has (evaluation, cross-fitting)."""
        return sigmoid(self.scalars["calib_a"] * self.decision(prompts, emb) + self.scalars["calib_b"])

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        return self.score_with_embeddings(prompts, self.embed(prompts))

    # --- checkpoint ---------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "embedder": self.embedder_name, "hash_bits": self.bits,
                "trained_on": self.info.get("sources")}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_arrays(path / WEIGHTS_FILE, {
            "idf": self.tfidf.idf.astype(np.float32), "text_coef": self.text_coef.astype(np.float32),
            "emb_coef": self.emb_coef.astype(np.float32),
        })
        write_config(path, {"router": self.name, "embedder": self.embedder_name, "hash_bits": self.bits,
                            "scalars": self.scalars, "info": self.info})
        return path

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, **overrides: Any) -> "LinearRouter":
        path = Path(path)
        cfg = read_config(path)
        if overrides:
            raise ConfigError(f"the linear router takes no load options, got {sorted(overrides)}")
        arrays = load_arrays(path / WEIGHTS_FILE, ARRAYS)
        return cls(arrays, require(cfg, "scalars", path), bits=int(require(cfg, "hash_bits", path)),
                   embedder=embedder, embedder_name=require(cfg, "embedder", path), info=cfg.get("info"))


# --- training ---------------------------------------------------------------------------------


def _ridge_dense(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Weighted ridge with an unpenalised intercept, closed form."""
    sw = w / w.sum()
    xm, ym = sw @ x, sw @ y
    xc, yc = x - xm, y - ym
    a = xc.T @ (xc * w[:, None])
    a[np.diag_indices_from(a)] += alpha * w.mean()
    coef = np.linalg.solve(a, xc.T @ (w * yc))
    return coef, float(ym - xm @ coef)


def _ridge_sparse(x, y: np.ndarray, w: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=alpha * w.mean(), fit_intercept=True, solver="sparse_cg", tol=1e-5, max_iter=2000)
    model.fit(x, y, sample_weight=w)
    return np.asarray(model.coef_, dtype=np.float64), float(model.intercept_)


def platt(z: np.ndarray, y: np.ndarray, w: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """(a, b) minimising the weighted cross-entropy of σ(a z + b) against soft targets y.

    Newton's method on the standardised score, from the constant predictor (a = 0, b = the logit of
    the mean target), each step halved until the loss falls. The plain Newton step from a = 1
    diverged when z carried little signal or the weights were uneven (measured: a = 1.5e11 with
    general data down-weighted to 0.1 beside 250 MMLU labels; every score saturated to 0 or 1 and
    the ranking was lost). On separable rows the optimum is at infinity; ``iters`` bounds the walk."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    mu, sd = float(w @ z / w.sum()), float(z.std()) or 1.0
    x = np.c_[(z - mu) / sd, np.ones_like(z)]

    def loss(c: np.ndarray) -> float:
        t = x @ c
        return float(w @ (np.logaddexp(0, t) - y * t))

    m = float(np.clip(w @ y / w.sum(), 1e-6, 1 - 1e-6))
    c = np.array([0.0, np.log(m / (1 - m))])
    cur = loss(c)
    for _ in range(iters):
        p = sigmoid(x @ c)
        g = x.T @ (w * (p - y))
        h = (x * (w * p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        lr = 1.0
        while lr > 1e-6 and loss(c - lr * step) > cur:
            lr /= 2
        c = c - lr * step
        new = loss(c)
        if cur - new < 1e-12 * max(abs(cur), 1.0):
            break
        cur = new
    a = c[0] / sd
    return float(a), float(c[1] - a * mu)


def fit_linear(prompts: Sequence[str], emb: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None,
               alpha_text: float = 10.0, alpha_emb: float = 10.0, bits: int = 18,
               embedder: Embedder | None = None, embedder_name: str | None = None,
               info: dict[str, Any] | None = None) -> LinearRouter:
    """Fit both ridge parts, their standardisation and the calibration on one training set.

    ``targets`` are P(strong better) in [0, 1]; ``weights`` (default 1) weight the rows."""
    prompts = check_prompts(prompts)
    y = np.asarray(targets, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    emb = np.asarray(emb, dtype=np.float64)
    if not (len(prompts) == len(y) == len(w) == len(emb)) or len(y) < 2:
        raise ConfigError(f"fit_linear needs >= 2 rows of one length; got {len(prompts)} prompts, "
                          f"{len(emb)} embeddings, {len(y)} targets, {len(w)} weights")
    if np.any(~np.isfinite(y)) or y.min() < 0 or y.max() > 1:
        raise ConfigError("fit_linear targets must be finite and in [0, 1]")
    if np.any(w < 0) or w.sum() <= 0:
        raise ConfigError("fit_linear weights must be >= 0 with a positive sum")
    keep = w > 0
    prompts, y, w, emb = [p for p, k in zip(prompts, keep) if k], y[keep], w[keep], emb[keep]
    tfidf = HashedTfidf(bits).fit(prompts)
    x_text = tfidf.transform(prompts)
    text_coef, text_bias = _ridge_sparse(x_text, y, w, alpha_text)
    x_emb = np.hstack([emb, surface_features(prompts)])
    emb_coef, emb_bias = _ridge_dense(x_emb, y, w, alpha_emb)
    t = np.asarray(x_text @ text_coef).ravel() + text_bias
    e = x_emb @ emb_coef + emb_bias
    scalars = {"text_bias": text_bias, "emb_bias": emb_bias, "text_mean": float(t.mean()),
               "text_std": float(t.std()) or 1.0, "emb_mean": float(e.mean()), "emb_std": float(e.std()) or 1.0}
    z = (t - scalars["text_mean"]) / scalars["text_std"] + (e - scalars["emb_mean"]) / scalars["emb_std"]
    scalars["calib_a"], scalars["calib_b"] = platt(z, y, w)
    info = {**(info or {}), "alpha_text": alpha_text, "alpha_emb": alpha_emb, "n_rows": int(len(y))}
    name = embedder_name or (embedder.name if embedder is not None else None)
    return LinearRouter({"idf": tfidf.idf, "text_coef": text_coef, "emb_coef": emb_coef}, scalars, bits=bits,
                        embedder=embedder, embedder_name=name, info=info)
