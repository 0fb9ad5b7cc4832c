"""The linear router plus "how hard is this prompt" features learned from other models' outcomes.

    z(q) = linear(q) + Σ_j β_j · a_j(q)          linear: the linear router's decision (standardised)
    a_j(q) = ([v_q, surface(q)] · γ_j + c_j − μ_j) / σ_j    a ridge fit of aux target j (standardised)
    P(strong better | q) = σ(a · z + b)          Platt scaling on the training targets

The aux targets (``routers.data.aux_targets``) are many-model mean correctness (``difficulty``) and
GSM8K solution length (``steps``). They never see the served pair's outcomes, which is why they
transfer: on golden outcomes alone the linear router learns each benchmark's topic words, which
do not carry over to chat prompts (leave-one-benchmark-out on MT Bench, docs/results).

Why β is chosen, not fitted jointly: a ridge over [embedding, a_j] weights a_j by how it helps *in
the training sources*, where the embedding already explains most of it, so a_j gets ~0 weight
(measured: +0.01 APGR on MT Bench leave-one-out). β is instead chosen on a grid by the mean APGR of
out-of-fold linear decisions plus β·a, the folds being the training *sources* (leave-one-source-out:
how the router does on a source it never saw) when there are several, else random folds. Training
rows only; the evaluation benchmark is never looked at.

The price of choosing β for transfer: with in-domain labels among the training sources, β still
follows the other sources, so the in-domain labels count for less (MMLU cross-fitted with the
general data is worse than with ``linear_static``: results/quality-aux/results.md). The served
default is this router (checkpoints/README.md says when ``linear_static`` is the better choice).

``fit_linear_aux`` trains one; ``routers.training.linear`` (``--aux``) builds a checkpoint:
``config.json`` + ``model.safetensors`` (aux coefficients) + ``linear/`` (the linear router).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.base import check_prompts
from routers.data.aux_targets import AuxSet
from routers.embeddings import Embedder
from routers.errors import ConfigError
from routers.evaluation.metrics import apgr
from routers.features import N_SURFACE, surface_features
from routers.models.embedding_router import EmbeddingRouter, load_arrays, require, save_arrays
from routers.models.linear import LinearRouter, _ridge_dense, fit_linear, platt
from routers.models.mf import sigmoid
from routers.registry import read_config, write_config

WEIGHTS_FILE = "model.safetensors"
LINEAR_DIR = "linear"
#: the β grid: both signs, so the inner folds can also switch a feature off or reverse it
BETA_GRID: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
INNER_FOLDS = 5
NEAR_DUPLICATE = 0.95


class AuxRegressor:
    """a(q): a ridge on [embedding, surface counts] predicting one aux target, standardised on its
    training rows (mean 0, std 1), so β is on one scale for every feature."""

    def __init__(self, kind: str, coef: np.ndarray, bias: float, mean: float, std: float) -> None:
        if std <= 0:
            raise ConfigError(f"aux regressor {kind}: std must be > 0, got {std}")
        self.kind, self.coef = kind, np.asarray(coef, dtype=np.float64)
        self.bias, self.mean, self.std = float(bias), float(mean), float(std)

    def __call__(self, prompts: Sequence[str], emb: np.ndarray) -> np.ndarray:
        x = np.hstack([np.asarray(emb, dtype=np.float64), surface_features(prompts)])
        if x.shape[1] != len(self.coef):
            raise ConfigError(f"aux regressor {self.kind} expects {len(self.coef) - N_SURFACE}-dim embeddings, "
                              f"got {x.shape[1] - N_SURFACE}; embed with the router's embedder")
        return (x @ self.coef + self.bias - self.mean) / self.std


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_aux(data: AuxSet, emb: np.ndarray, avoid_emb: np.ndarray | None = None,
            threshold: float = NEAR_DUPLICATE, alpha: float = 10.0) -> AuxRegressor:
    """Fit ``a`` on ``data`` (embedded as ``emb``), without the questions any of whose rows is a
    near-duplicate (cosine >= ``threshold``) of a row of ``avoid_emb`` (the evaluation target's
    prompts)."""
    emb = np.asarray(emb, dtype=np.float64)
    if len(emb) != len(data):
        raise ConfigError(f"aux set {data.kind}: {len(emb)} embeddings for {len(data)} prompts")
    keep = np.ones(len(data), dtype=bool)
    if avoid_emb is not None and len(avoid_emb):
        for s in range(0, len(data), 2048):  # blocks: the similarity matrix of all rows would not fit
            keep[s:s + 2048] = (_unit(emb[s:s + 2048]) @ _unit(avoid_emb).T).max(axis=1) < threshold
        # a question goes with all its rows: a claim-augmented copy can fall below the threshold
        keep &= ~np.isin(data.questions, data.questions[~keep])
    if keep.sum() < 10:
        raise ConfigError(f"aux set {data.kind}: {int(keep.sum())} rows left after removing the target's "
                          "benchmark and near-duplicates; need >= 10")
    idx = np.flatnonzero(keep)
    x = np.hstack([emb[idx], surface_features([data.prompts[i] for i in idx])])
    coef, bias = _ridge_dense(x, data.values[idx], np.ones(len(idx)), alpha)
    pred = x @ coef + bias
    return AuxRegressor(data.kind, coef, bias, float(pred.mean()), float(pred.std()) or 1.0)


class LinearAuxRouter(EmbeddingRouter):
    """The linear router's decision plus β-weighted aux features, calibrated (module docstring)."""

    name = "linear_aux"

    def __init__(self, linear: LinearRouter, aux: Sequence[AuxRegressor], beta: Sequence[float],
                 calib: tuple[float, float], info: dict[str, Any] | None = None) -> None:
        if len(aux) != len(beta):
            raise ConfigError(f"linear_aux: {len(aux)} aux features but {len(beta)} β values")
        super().__init__(linear._embedder, linear.embedder_name, linear.embedding_dim)
        self.linear, self.aux = linear, list(aux)
        self.beta = np.asarray(beta, dtype=np.float64)
        self.calib = (float(calib[0]), float(calib[1]))
        self.info = dict(info or {})

    def decision(self, prompts: Sequence[str], emb: np.ndarray) -> np.ndarray:
        z = self.linear.decision(prompts, emb)
        for a, b in zip(self.aux, self.beta):
            if b:
                z = z + b * a(prompts, emb)
        return z

    def score_with_embeddings(self, prompts: Sequence[str], emb: np.ndarray) -> np.ndarray:
        prompts = check_prompts(prompts)
        return sigmoid(self.calib[0] * self.decision(prompts, self.check_embeddings(emb)) + self.calib[1])

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        return self.score_with_embeddings(prompts, self.embed(prompts))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "embedder": self.embedder_name, "aux": [a.kind for a in self.aux],
                "beta": self.beta.tolist(), "trained_on": self.info.get("sources")}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        self.linear.save(path / LINEAR_DIR)
        save_arrays(path / WEIGHTS_FILE, {f"coef_{a.kind}": a.coef.astype(np.float32) for a in self.aux})
        write_config(path, {
            "router": self.name, "embedder": self.embedder_name, "calib": list(self.calib), "info": self.info,
            "aux": [{"kind": a.kind, "bias": a.bias, "mean": a.mean, "std": a.std, "beta": float(b)}
                    for a, b in zip(self.aux, self.beta)],
        })
        return path

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, **overrides: Any) -> "LinearAuxRouter":
        path = Path(path)
        if overrides:
            raise ConfigError(f"the linear_aux router takes no load options, got {sorted(overrides)}")
        cfg = read_config(path)
        specs = require(cfg, "aux", path)
        arrays = load_arrays(path / WEIGHTS_FILE, [f"coef_{s['kind']}" for s in specs])
        aux = [AuxRegressor(s["kind"], arrays[f"coef_{s['kind']}"], s["bias"], s["mean"], s["std"]) for s in specs]
        linear = LinearRouter.load(path / LINEAR_DIR, embedder=embedder)
        return cls(linear, aux, [s["beta"] for s in specs], tuple(require(cfg, "calib", path)), cfg.get("info"))


# --- training ---------------------------------------------------------------------------------


def _apgr_targets(scores: np.ndarray, y: np.ndarray) -> float:
    """APGR against targets P(strong better): strong = y, weak = 1 − y has the same per-question
    gain 2y − 1, and APGR only depends on the gains. NaN where no question has a gain."""
    try:
        return float(apgr(scores, y, 1.0 - y))
    except ValueError:
        return float("nan")


def choose_beta(oof: np.ndarray, feats: np.ndarray, y: np.ndarray, folds: np.ndarray,
                grid: Sequence[float] = BETA_GRID) -> tuple[float, ...]:
    """The β maximising the mean over folds of APGR(oof + feats · β); ties go to the smallest |β|."""
    best: tuple[float, ...] = tuple(0.0 for _ in range(feats.shape[1]))
    best_v = -np.inf
    for beta in sorted(itertools.product(grid, repeat=feats.shape[1]), key=lambda b: sum(map(abs, b))):
        s = oof + feats @ np.asarray(beta)
        v = np.nanmean([_apgr_targets(s[folds == f], y[folds == f]) for f in np.unique(folds)])
        if v > best_v + 1e-9:
            best, best_v = tuple(beta), v
    return best


def fit_linear_aux(prompts: Sequence[str], emb: np.ndarray, targets: np.ndarray, weights: np.ndarray | None,
                   sources: Sequence[str] | None, aux: Sequence[AuxRegressor], grid: Sequence[float] = BETA_GRID,
                   seed: int = 0, embedder: Embedder | None = None, embedder_name: str | None = None,
                   info: dict[str, Any] | None = None, **linear_kw: Any) -> LinearAuxRouter:
    """Fit the linear router on all rows, choose β by inner folds (module docstring), calibrate."""
    prompts = check_prompts(prompts)
    y = np.asarray(targets, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    emb = np.asarray(emb, dtype=np.float64)
    if sources is not None and len(sources) != len(y):
        raise ConfigError(f"fit_linear_aux: {len(sources)} source names for {len(y)} rows")
    src = np.asarray(sources if sources is not None else ["all"] * len(y))
    if len(set(src.tolist())) >= 2:
        folds = np.unique(src, return_inverse=True)[1]  # leave-one-source-out
    else:
        folds = np.random.default_rng(seed).integers(0, INNER_FOLDS, len(y))
    feats = np.column_stack([a(prompts, emb) for a in aux]) if aux else np.zeros((len(y), 0))
    oof = np.zeros(len(y))
    for f in np.unique(folds):
        test, train = folds == f, (folds != f) & (w > 0)
        if train.sum() < 2:
            continue
        inner = fit_linear([p for p, k in zip(prompts, train) if k], emb[train], y[train], w[train], **linear_kw)
        oof[test] = inner.decision([p for p, k in zip(prompts, test) if k], emb[test])
    beta = choose_beta(oof, feats, y, folds, grid) if aux else ()
    linear = fit_linear(prompts, emb, y, w, embedder=embedder, embedder_name=embedder_name, **linear_kw)
    z = linear.decision(prompts, emb) + (feats @ np.asarray(beta) if aux else 0.0)
    info = {**(info or {}), "beta_folds": "leave-one-source-out" if len(set(src.tolist())) >= 2 else
            f"{INNER_FOLDS} random folds", "beta_grid": list(grid)}
    return LinearAuxRouter(linear, aux, beta, platt(z, y, w), info)
