"""Build the SW ranking router: no training, just embed the training prompts and store the battles.

Battles are between *groups* of models. Default (``group_by="classes"``): the paper's strong class
(tiers 0-1) against the weak class (tier 2), two groups ``strong`` / ``weak``. ``group_by="tiers"``
keeps every battle between two different tiers (groups ``tier0`` … ``tier9``, as RouteLLM does).
``model_groups`` (model -> group name) overrides both (tests, custom classes).

A held-out split (``val_fraction`` of the prompts) is scored by a router built on the rest, for
the summary line (weighted log-loss / accuracy on the strong-vs-weak battles); the saved router
uses all prompts. ``max_prompts`` subsamples prompts (seeded) to keep the checkpoint small.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from routers.embeddings import Embedder, embedder_from_spec
from routers.errors import ConfigError, DataError, UnknownModelError
from routers.registry import default_checkpoint_dir
from routers.models.sw_ranking import DEFAULT_GAMMA, SWRankingRouter, max_similarity
from routers.training.common import (
    Timer, TrainResult, load_preferences, set_seed, split_by_prompt, tier_groups, tier_table,
)

log = logging.getLogger(__name__)


def group_battles(df: pd.DataFrame, model_groups: Mapping[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """Keep the rows whose two models are in different groups; returns (battles, group names) with
    battles columns prompt, a, b (group ids), y (= p_b_wins), w (weight)."""
    names = sorted(set(model_groups.values()), key=lambda g: (g != "strong", g != "weak", g))
    gid = {g: i for i, g in enumerate(names)}
    a = df["model_a"].map(model_groups)
    b = df["model_b"].map(model_groups)
    keep = a.notna() & b.notna() & (a != b) & (df["weight"] > 0)
    out = pd.DataFrame({
        "prompt": df.loc[keep, "prompt"].to_numpy(),
        "a": a[keep].map(gid).to_numpy(np.int64), "b": b[keep].map(gid).to_numpy(np.int64),
        "y": df.loc[keep, "p_b_wins"].to_numpy(np.float64), "w": df.loc[keep, "weight"].to_numpy(np.float64),
    })
    return out, names


def class_battles(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The paper's strong-class vs weak-class rows (``strong_weak_pairs`` with the mix's tiers),
    as battles of group 0 (``strong``) against group 1 (``weak``)."""
    from routers.training.data import strong_weak_pairs

    pairs = strong_weak_pairs(df, tier_table(df))
    pairs = pairs[pairs["weight"] > 0]
    return pd.DataFrame({
        "prompt": pairs["prompt"].to_numpy(), "a": np.zeros(len(pairs), np.int64),
        "b": np.ones(len(pairs), np.int64), "y": 1.0 - pairs["p_strong"].to_numpy(np.float64),
        "w": pairs["weight"].to_numpy(np.float64),
    }), ["strong", "weak"]


def _router(battles: pd.DataFrame, names, emb_of: dict[str, np.ndarray], strong, weak, gamma, embedder, info=None):
    prompts = pd.unique(battles["prompt"])
    pid = pd.Series(np.arange(len(prompts)), index=prompts)
    emb = np.stack([emb_of[p] for p in prompts])
    arrays = {"battle_prompt": pid[battles["prompt"]].to_numpy(np.int64), "battle_a": battles["a"].to_numpy(),
              "battle_b": battles["b"].to_numpy(), "battle_y": battles["y"].to_numpy(),
              "battle_w": battles["w"].to_numpy()}
    return SWRankingRouter(emb, max_similarity(emb), arrays, names, strong, weak, gamma,
                           embedder=embedder, embedder_name=embedder.name, info=info)


def _val_metrics(router: SWRankingRouter, val: pd.DataFrame, emb_of) -> dict[str, float]:
    """Weighted log-loss / accuracy of P(strong wins) on held-out strong-vs-weak battles."""
    s, w = router.group_names.index(router.strong), router.group_names.index(router.weak)
    sw = val[((val["a"] == s) & (val["b"] == w)) | ((val["a"] == w) & (val["b"] == s))]
    if sw.empty:
        return {}
    prompts = pd.unique(sw["prompt"])
    p_by_prompt = pd.Series(router.score_embeddings(np.stack([emb_of[p] for p in prompts])), index=prompts)
    p = np.clip(p_by_prompt[sw["prompt"]].to_numpy(), 1e-7, 1 - 1e-7)
    target = np.where(sw["a"] == s, 1.0 - sw["y"], sw["y"])  # P(strong won)
    wt = sw["w"].to_numpy()
    ll = -np.sum(wt * (target * np.log(p) + (1 - target) * np.log(1 - p))) / wt.sum()
    decided = np.abs(target - 0.5) > 1e-9
    acc = float(np.sum(wt[decided] * ((p[decided] > 0.5) == (target[decided] > 0.5))) / max(wt[decided].sum(), 1e-12))
    return {"val_log_loss": float(ll), "val_accuracy": acc, "val_battles": int(len(sw))}


def build_sw(
    mix: Any = None,
    out_dir: str | Path | None = None,
    embedder: Embedder | str | None = None,
    group_by: str = "classes",
    model_groups: Mapping[str, str] | None = None,
    strong: str | None = None,
    weak: str | None = None,
    gamma: float = DEFAULT_GAMMA,
    max_prompts: int | None = None,
    val_fraction: float = 0.05,
    seed: int = 0,
    show_progress: bool | None = None,
) -> TrainResult:
    """Embed and store; write the checkpoint to ``out_dir`` (default ``checkpoints/sw_ranking``)."""
    set_seed(seed)
    out_dir = Path(out_dir) if out_dir else default_checkpoint_dir() / "sw_ranking"
    with Timer() as timer:
        df = load_preferences(mix)
        grouping = group_by if model_groups is None else "custom"
        if model_groups is not None:
            battles, names = group_battles(df, model_groups)
        elif group_by == "classes":
            battles, names = class_battles(df)
        elif group_by == "tiers":
            groups = tier_groups(tier_table(df))
            battles, names = group_battles(df, {m: g for g, ms in groups.items() if g.startswith("tier") for m in ms})
        else:
            raise ConfigError(f"group_by must be 'classes' or 'tiers', got {group_by!r}")
        if battles.empty or len(names) < 2:
            raise DataError(f"no battles between two different groups in the training data (groups: {names})")
        strong = strong or ("strong" if "strong" in names else names[0])
        weak = weak or ("weak" if "weak" in names else names[-1])
        for name in (strong, weak):
            if name not in names:
                raise UnknownModelError(f"unknown group {name!r} for --strong/--weak; known groups: {names}")
        prompts = pd.unique(battles["prompt"])
        if max_prompts is not None and len(prompts) > max_prompts:
            keep = np.random.default_rng(seed).choice(len(prompts), size=max_prompts, replace=False)
            battles = battles[battles["prompt"].isin(set(prompts[np.sort(keep)]))].reset_index(drop=True)
            prompts = pd.unique(battles["prompt"])
        if embedder is None or isinstance(embedder, str):
            embedder = embedder_from_spec(embedder)
        emb = np.asarray(embedder.embed(list(prompts), progress=show_progress is not False), dtype=np.float32)
        emb_of = dict(zip(prompts, emb))

        metrics: dict[str, Any] = {}
        val_mask = split_by_prompt(battles["prompt"], val_fraction, seed)
        if val_mask.any() and (~val_mask).any():
            try:
                held = _router(battles[~val_mask], names, emb_of, strong, weak, gamma, embedder)
                metrics.update(_val_metrics(held, battles[val_mask], emb_of))
            except ConfigError as exc:  # e.g. the train part lost a group: no validation figure
                log.warning("sw_ranking validation skipped: %s", exc)
        metrics.update({"n_prompts": int(len(prompts)), "n_battles": int(len(battles)), "n_groups": len(names)})
        router = _router(battles, names, emb_of, strong, weak, gamma, embedder,
                         info={**metrics, "group_by": grouping,
                               "max_prompts": max_prompts, "seed": seed})
        router.save(out_dir)
    result = TrainResult("sw_ranking", out_dir, metrics, timer.seconds)
    print(result.summary_line())
    return result
