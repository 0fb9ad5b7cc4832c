"""Similarity-weighted (SW) ranking router (paper Eq. 9-10), solved per query at inference time.

Training data: battles between *groups* of models (by default two: the ``strong`` and ``weak``
tier classes; any K groups, e.g. tiers, work). Each battle has a prompt, the two group ids, the
probability ``y`` that the second group won (ties 0.5, soft labels as they are) and a weight.

For a query q, every training prompt q' gets a weight (Eq. 9, γ = 10)

    S(q, q') = cos(q, q') / max_{s ≠ q'} cos(q', q_s),      ω(q') = γ^(1 + S(q, q'))

and Bradley-Terry coefficients ξ solve the ω-weighted logistic regression over all battles
(Eq. 10); P(strong wins | q) = σ(ξ_strong − ξ_weak).

Fast path (``SWRankingRouter``): the weighted log-likelihood only depends on the weighted win
counts W[i, j] = Σ_battles ω · weight · P(i beats j), so each prompt's battles are summed once into
a K×K table at load time, a batch of queries costs one (B × n_prompts) similarity product plus one
(B × n_prompts) @ (n_prompts × K²) product, and Bradley-Terry is fitted on the K×K table (closed
form for K = 2: P = W[s, w] / (W[s, w] + W[w, s]); batched Newton otherwise).
``reference_probability`` is RouteLLM's way — a logistic regression over every battle — kept to
check the fast path (same result to 1e-3, see tests).

Note: the paper writes P = 1 / (1 + e^{ξ_s − ξ_w}); we use the conventional σ(ξ_s − ξ_w) so that a
larger strong coefficient means the strong model wins more often, as RouteLLM's code does.

The max similarity uses max(·, ``MIN_MAX_SIM``): a training prompt with no positive neighbour would
otherwise flip or blow up its S.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.embeddings import Embedder
from routers.errors import CheckpointError, ConfigError, UnknownModelError
from routers.models.embedding_router import EmbeddingRouter, load_arrays, require, save_arrays
from routers.registry import read_config, write_config

WEIGHTS_FILE = "sw_data.safetensors"
ARRAY_NAMES = ("embeddings", "max_sim", "battle_prompt", "battle_a", "battle_b", "battle_y", "battle_w")
DEFAULT_GAMMA = 10.0
MIN_MAX_SIM = 0.05
#: A tiny ridge on the BT coefficients (relative to the total weight) keeps them finite when one
#: group never loses; its effect on probabilities is ~1e-6. Fast path and reference use the same.
RIDGE = 1e-6


def max_similarity(emb: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each row, the max cosine similarity to any *other* row (rows are L2-normalised)."""
    emb = np.asarray(emb, dtype=np.float32)
    n = len(emb)
    out = np.full(n, -1.0, dtype=np.float32)
    if n < 2:
        return np.ones(n, dtype=np.float32)
    for start in range(0, n, chunk):
        sims = emb[start:start + chunk] @ emb.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # exclude the prompt itself
        out[start:start + chunk] = sims.max(axis=1)
    return out


def log_weights(query_emb: np.ndarray, train_emb: np.ndarray, max_sim: np.ndarray, gamma: float) -> np.ndarray:
    """log ω for every (query, training prompt) pair: ln γ · (1 + S(q, q')), shape (B, n)."""
    # float64: a float32 product differs between batch and single-row calls at ~1e-8 after
    # γ^(...); float64 keeps batched and single scores equal to ~1e-15.
    sims = np.asarray(query_emb, dtype=np.float64) @ np.asarray(train_emb, dtype=np.float64).T
    s = sims / np.maximum(max_sim, MIN_MAX_SIM).astype(np.float64)[None, :]
    return np.log(gamma) * (1.0 + s)


def bradley_terry(wins: np.ndarray, ridge: float = RIDGE, iters: int = 100, tol: float = 1e-10) -> np.ndarray:
    """BT coefficients from weighted win tables ``wins`` (B, K, K), W[i, j] = weight of i beating j.

    Maximises Σ W[i,j] log σ(ξ_i − ξ_j) − (ridge · ΣW / 2) Σ_{i≥1} ξ_i² with ξ_0 = 0 (batched Newton).
    Returns ξ of shape (B, K).
    """
    wins = np.asarray(wins, dtype=np.float64)
    b, k, _ = wins.shape
    wins = wins * (1.0 - np.eye(k))[None]  # a group against itself carries no information
    n_games = wins + wins.transpose(0, 2, 1)
    lam = ridge * np.maximum(wins.sum(axis=(1, 2)), 1e-300)[:, None]
    xi = np.zeros((b, k))
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xi[:, :, None] - xi[:, None, :])))
        grad = (wins - n_games * p).sum(axis=2) - lam * xi
        curv = n_games * p * (1.0 - p)
        hess = curv - np.eye(k)[None] * (curv.sum(axis=2)[:, :, None] + lam[:, :, None])
        step = np.linalg.solve(hess[:, 1:, 1:], grad[:, 1:, None])[:, :, 0]
        xi[:, 1:] -= step
        if np.abs(step).max() < tol:
            break
    return xi


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_probability(
    query_emb: np.ndarray, train_emb: np.ndarray, max_sim: np.ndarray, battle_prompt: np.ndarray,
    battle_a: np.ndarray, battle_b: np.ndarray, battle_y: np.ndarray, battle_w: np.ndarray,
    strong: int, weak: int, n_groups: int, gamma: float = DEFAULT_GAMMA, ridge: float = RIDGE,
) -> float:
    """RouteLLM's procedure for one query: a weighted logistic regression over *every battle*.

    Design row per battle: +1 at group a, −1 at group b; target P(a wins) = 1 − y; sample weight
    ω(prompt) · weight (a tie is half a win each way, as RouteLLM's duplicated-battle trick). Solved
    by Newton with ξ_0 = 0 and the same tiny ridge as the fast path. Slow (O(battles) per Newton step
    per query): for tests and audits, not serving.
    """
    logw = log_weights(np.asarray(query_emb)[None, :], train_emb, max_sim, gamma)[0]
    omega = np.exp(logw)[battle_prompt] * battle_w
    keep = battle_a != battle_b
    x = np.zeros((int(keep.sum()), n_groups))
    rows = np.arange(x.shape[0])
    x[rows, battle_a[keep]] = 1.0
    x[rows, battle_b[keep]] = -1.0
    t = 1.0 - battle_y[keep]
    sw = omega[keep]
    lam = ridge * sw.sum()
    xf = x[:, 1:]
    beta = np.zeros(n_groups - 1)
    for _ in range(100):
        p = _sigmoid(xf @ beta)
        grad = xf.T @ (sw * (t - p)) - lam * beta
        hess = -(xf.T * (sw * p * (1 - p))) @ xf - lam * np.eye(n_groups - 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    xi = np.concatenate([[0.0], beta])
    return float(_sigmoid(xi[strong] - xi[weak]))


class SWRankingRouter(EmbeddingRouter):
    """SW ranking over stored training prompts (see the module docstring).

    ``embeddings`` (n, d) L2-normalised, ``max_sim`` (n,), battles as parallel arrays
    (``battle_prompt`` row index, ``battle_a``/``battle_b`` group ids, ``battle_y`` = P(b wins),
    ``battle_w`` weight), ``group_names`` (K names), and the scoring pair (group names).
    """

    name = "sw_ranking"

    def __init__(
        self,
        embeddings: np.ndarray,
        max_sim: np.ndarray,
        battles: dict[str, np.ndarray],
        group_names: Sequence[str],
        strong: str = "strong",
        weak: str = "weak",
        gamma: float = DEFAULT_GAMMA,
        embedder: Embedder | None = None,
        embedder_name: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        # Training prompts are kept as float16 (what the checkpoint stores, half the size) and used
        # re-normalised in float32, so a saved and re-loaded router scores bit-identically.
        self._emb16 = np.asarray(embeddings).astype(np.float16)
        emb = self._emb16.astype(np.float32)
        self.train_emb = (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)).astype(np.float64)
        self.max_sim = np.asarray(max_sim, dtype=np.float32)
        self.group_names = [str(g) for g in group_names]
        n, k = len(self.train_emb), len(self.group_names)
        if self.train_emb.ndim != 2 or self.max_sim.shape != (n,) or n == 0:
            raise ConfigError(f"sw_ranking needs embeddings (n, d) and max_sim (n,), got "
                              f"{self.train_emb.shape} and {self.max_sim.shape}")
        if k < 2 or len(set(self.group_names)) != k:
            raise ConfigError(f"sw_ranking needs >= 2 distinct group names, got {self.group_names}")
        self.battles = {key: np.asarray(battles[key]) for key in ARRAY_NAMES[2:]}
        bp, ba, bb = (self.battles[x].astype(np.int64) for x in ("battle_prompt", "battle_a", "battle_b"))
        y, w = self.battles["battle_y"].astype(np.float64), self.battles["battle_w"].astype(np.float64)
        if not (len(bp) == len(ba) == len(bb) == len(y) == len(w)) or len(bp) == 0:
            raise ConfigError("sw_ranking battle arrays must be non-empty and of one length")
        if bp.min() < 0 or bp.max() >= n or min(ba.min(), bb.min()) < 0 or max(ba.max(), bb.max()) >= k:
            raise ConfigError("sw_ranking battles index prompts or groups out of range")
        if np.any((y < 0) | (y > 1)) or np.any(w < 0):
            raise ConfigError("sw_ranking battle labels must be in [0, 1] and weights >= 0")
        if not np.isfinite(gamma) or gamma <= 1:
            raise ConfigError(f"gamma must be a number > 1 (the paper uses 10), got {gamma!r}")
        self.gamma = float(gamma)
        super().__init__(embedder, embedder_name, embedding_dim=self.train_emb.shape[1])
        self.info = dict(info or {})
        # Per-prompt K×K weighted win table: the only thing the BT fit needs from the battles.
        table = np.zeros((n, k, k))
        np.add.at(table, (bp, ba, bb), w * (1.0 - y))  # a beats b
        np.add.at(table, (bp, bb, ba), w * y)  # b beats a
        self.table = table.reshape(n, k * k)
        self.set_pair(strong, weak)

    def set_pair(self, strong: str, weak: str) -> None:
        ids = []
        for name in (strong, weak):
            if name not in self.group_names:
                raise UnknownModelError(
                    f"unknown group {name!r} for the sw_ranking router; known groups: {self.group_names}")
            ids.append(self.group_names.index(name))
        if ids[0] == ids[1]:
            raise ConfigError(f"strong and weak must differ, both are {strong!r}")
        self.strong, self.weak = strong, weak
        self._s, self._w = ids

    def win_tables(self, emb: np.ndarray) -> np.ndarray:
        """Weighted win tables (B, K, K) of a batch of query embeddings (scaled per query, which
        does not change the BT solution)."""
        logw = log_weights(emb, self.train_emb, self.max_sim, self.gamma)
        omega = np.exp(logw - logw.max(axis=1, keepdims=True))
        k = len(self.group_names)
        return (omega @ self.table).reshape(len(emb), k, k)

    def score_embeddings(self, emb: np.ndarray) -> np.ndarray:
        emb = self.check_embeddings(emb)
        wins = self.win_tables(emb)
        s, w = self._s, self._w
        if len(self.group_names) == 2:
            ws, ww = wins[:, s, w], wins[:, w, s]
            tot = ws + ww
            return np.where(tot > 0, ws / np.where(tot > 0, tot, 1.0), 0.5)
        xi = bradley_terry(wins)
        return _sigmoid(xi[:, s] - xi[:, w])

    def reference_score(self, emb: np.ndarray) -> np.ndarray:
        """The slow per-battle logistic regression (``reference_probability``) for each row."""
        emb = self.check_embeddings(emb)
        return np.array([reference_probability(
            e, self.train_emb, self.max_sim, self.battles["battle_prompt"].astype(np.int64),
            self.battles["battle_a"].astype(np.int64), self.battles["battle_b"].astype(np.int64),
            self.battles["battle_y"].astype(np.float64), self.battles["battle_w"].astype(np.float64),
            self._s, self._w, len(self.group_names), self.gamma) for e in emb])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_arrays(path / WEIGHTS_FILE, {
            "embeddings": self._emb16,
            "max_sim": self.max_sim.astype(np.float32),
            "battle_prompt": self.battles["battle_prompt"].astype(np.int32),
            "battle_a": self.battles["battle_a"].astype(np.int16),
            "battle_b": self.battles["battle_b"].astype(np.int16),
            "battle_y": self.battles["battle_y"].astype(np.float32),
            "battle_w": self.battles["battle_w"].astype(np.float32),
        })
        write_config(path, {
            "router": self.name, "groups": self.group_names, "strong": self.strong, "weak": self.weak,
            "gamma": self.gamma, "embedder": self.embedder_name, "embedding_dim": int(self.train_emb.shape[1]),
            "n_prompts": int(len(self.train_emb)), "n_battles": int(len(self.battles["battle_y"])),
            "info": self.info,
        })
        return path

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, strong: str | None = None,
             weak: str | None = None, gamma: float | None = None, **overrides: Any) -> "SWRankingRouter":
        path = Path(path)
        cfg = read_config(path)
        if cfg["router"] != cls.name:
            raise CheckpointError(f"{str(path)!r} holds a {cfg['router']!r} router, not {cls.name!r}")
        if overrides:
            raise ConfigError(f"unknown sw_ranking option(s) {sorted(overrides)}; use embedder, strong, weak, gamma")
        arrays = load_arrays(path / WEIGHTS_FILE, ARRAY_NAMES)
        try:
            return cls(
                arrays["embeddings"], arrays["max_sim"], {k: arrays[k] for k in ARRAY_NAMES[2:]},
                require(cfg, "groups", path), strong or require(cfg, "strong", path),
                weak or require(cfg, "weak", path), gamma if gamma is not None else cfg.get("gamma", DEFAULT_GAMMA),
                embedder=embedder, embedder_name=require(cfg, "embedder", path), info=cfg.get("info"),
            )
        except (ConfigError, TypeError, ValueError) as exc:
            raise CheckpointError(f"malformed sw_ranking checkpoint {str(path)!r}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "strong": self.strong, "weak": self.weak, "gamma": self.gamma,
                "embedder": self.embedder_name, "n_prompts": int(len(self.train_emb)),
                "groups": self.group_names}
