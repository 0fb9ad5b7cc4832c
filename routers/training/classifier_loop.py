"""The fine-tuning loop shared by the ``bert`` and ``causal_llm`` trainers.

Input: a *labelled frame* with columns ``prompt``, ``label`` (one of ``LABELS``: strong / tie /
weak, the outcome of a strong-vs-weak comparison) and optionally ``weight`` (default 1).

Rows with the same prompt are merged into one example with a soft target (the weighted label
frequencies) and a weight (the summed row weights). Why: the real data has many comparisons per
prompt (AlpacaEval: ~100 models per instruction), and
    sum_rows w_i * -log p(y_i | q) == W_q * CE(target_q, p(. | q))
so the objective is exactly the paper's Eq. 1 over rows, at a fraction of the forward passes.

The router passed in must offer ``logits(prompts) -> (N, 3) tensor`` (grad-enabled), a ``model``
(torch module), ``predict_proba(prompts) -> (N, 3) ndarray`` and ``save(path)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from routers.models.classifier import LABELS
from routers.errors import ConfigError, DataError


@dataclass
class Examples:
    """Prompts with soft targets over LABELS (rows sum to 1) and non-negative weights."""

    prompts: list[str]
    targets: np.ndarray  # (n, 3) float64
    weights: np.ndarray  # (n,) float64

    def __len__(self) -> int:
        return len(self.prompts)


def check_labelled_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Validate a labelled frame; DataError names the bad column / value and the fix."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"training data must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in ("prompt", "label") if c not in frame.columns]
    if missing:
        raise DataError(
            f"labelled training frame lacks columns {missing}; it needs prompt, label "
            f"({'/'.join(LABELS)}) and optionally weight — build it with "
            f"routers.training.data.strong_weak_pairs"
        )
    bad = sorted(set(frame["label"].astype(str)) - set(LABELS))
    if bad:
        raise DataError(f"labels must be one of {list(LABELS)}, got {bad[:5]}")
    if not frame["prompt"].map(lambda p: isinstance(p, str)).all():
        raise DataError("every prompt must be a str; drop or fix the rows with missing prompts")
    out = frame[["prompt", "label"]].copy()
    out["weight"] = frame["weight"].astype(float) if "weight" in frame.columns else 1.0
    if (out["weight"] < 0).any() or out["weight"].isna().any():
        raise DataError("weights must be non-negative numbers; fix the weight column")
    out = out[out["weight"] > 0]
    if out.empty:
        raise DataError("the labelled training frame has no rows with a positive weight")
    return out


def aggregate(frame: pd.DataFrame) -> Examples:
    """Merge rows per prompt into soft targets (see the module docstring). Order: first appearance."""
    frame = check_labelled_frame(frame)
    idx = frame["label"].map({label: i for i, label in enumerate(LABELS)}).to_numpy()
    onehot = np.eye(len(LABELS))[idx] * frame["weight"].to_numpy()[:, None]
    g = pd.DataFrame(onehot, columns=list(LABELS))
    g["prompt"] = frame["prompt"].to_numpy()
    sums = g.groupby("prompt", sort=False)[list(LABELS)].sum()
    weights = sums.sum(axis=1).to_numpy()
    return Examples(list(sums.index), sums.to_numpy() / weights[:, None], weights)


def weighted_soft_ce(logits, targets, weights):
    """sum_i w_i * CE(target_i, softmax(logits_i)) / sum_i w_i (torch tensors)."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    per = -(targets * logp).sum(dim=-1)
    return (per * weights).sum() / weights.sum().clamp_min(1e-12)


def evaluate(router, ex: Examples) -> dict[str, float]:
    """Weighted validation log-loss and accuracy (expected agreement with the rows' labels)."""
    probs = np.clip(router.predict_proba(ex.prompts), 1e-12, 1.0)
    w = ex.weights / ex.weights.sum()
    loss = float(-(w * (ex.targets * np.log(probs)).sum(axis=1)).sum())
    acc = float((w * ex.targets[np.arange(len(ex)), probs.argmax(axis=1)]).sum())
    return {"val_loss": loss, "val_accuracy": acc}


def prior_metrics(train: Examples, val: Examples) -> dict[str, float]:
    """Validation log-loss / accuracy of always predicting the weighted training label frequencies."""
    prior = (train.targets * train.weights[:, None]).sum(axis=0) / train.weights.sum()
    prior = np.clip(prior, 1e-12, 1.0)
    w = val.weights / val.weights.sum()
    return {"val_loss": float(-(w * (val.targets * np.log(prior)).sum(axis=1)).sum()),
            "val_accuracy": float((w * val.targets[:, int(prior.argmax())]).sum())}


def _batches(ex: Examples, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches; within windows of 32 batches, sorted by length so padding stays small."""
    order = rng.permutation(len(ex))
    window = batch_size * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort([len(ex.prompts[i]) for i in chunk], kind="stable")]
        batches.extend(chunk[s : s + batch_size] for s in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def fit(
    router,
    train: Examples,
    val: Examples | None,
    out_dir: str | Path,
    *,
    epochs: float,
    lr: float,
    batch_size: int,
    weight_decay: float,
    warmup_ratio: float = 0.05,
    max_steps: int | None = None,
    grad_accum: int = 1,
    eval_every: int | None = None,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    desc: str = "train",
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Train ``router.model`` with AdamW (linear warm-up then linear decay) on the weighted soft
    cross-entropy; evaluate on ``val`` every ``eval_every`` optimizer steps (default: once per
    epoch and at the end) and save the router to ``out_dir`` whenever validation log-loss improves
    (model selection, as in the paper). Without ``val`` the final model is saved.
    Returns metrics: train_loss (mean over the last 50 steps), val_loss / val_accuracy of the
    selected model, prior_val_loss / prior_val_accuracy (the constant label-frequency baseline),
    best_step, steps, train_prompts, val_prompts.
    """
    import torch

    from routers.training.common import progress

    if batch_size < 1 or grad_accum < 1:
        raise ConfigError(f"batch_size and grad_accum must be >= 1, got {batch_size}, {grad_accum}")
    if not epochs > 0 and not max_steps:
        raise ConfigError(f"epochs must be > 0 (or give max_steps), got {epochs!r}")
    if len(train) == 0:
        raise DataError("no training examples left after the validation split")
    rng = np.random.default_rng(seed)
    per_epoch = math.ceil(math.ceil(len(train) / batch_size) / grad_accum)
    total = max(1, math.ceil(per_epoch * epochs)) if epochs > 0 else int(max_steps)
    if max_steps:
        total = min(total, int(max_steps)) if epochs > 0 else int(max_steps)
    eval_every = eval_every or per_epoch
    warmup = int(total * warmup_ratio)

    params = [p for p in router.model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases / norms: no weight decay, as usual
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )

    best: dict[str, Any] = {"val_loss": math.inf}
    losses: list[float] = []
    step = 0

    def maybe_select(force: bool = False) -> None:
        if val is None or len(val) == 0:
            if force:
                router.save(out_dir)
                best.update(best_step=step)
            return
        m = evaluate(router, val)
        if m["val_loss"] < best["val_loss"]:
            best.update(m, best_step=step)
            router.save(out_dir)

    router.model.train()
    bar = progress(range(total), desc=desc, total=total, enabled=show_progress)
    bar_iter = iter(bar)
    micro = 0
    opt.zero_grad(set_to_none=True)
    while step < total:
        for b in _batches(train, batch_size, rng):
            logits = router.logits([train.prompts[i] for i in b])
            t = torch.as_tensor(train.targets[b], dtype=torch.float32, device=logits.device)
            w = torch.as_tensor(train.weights[b], dtype=torch.float32, device=logits.device)
            loss = weighted_soft_ce(logits, t, w) / grad_accum
            loss.backward()
            losses.append(float(loss.detach()) * grad_accum)
            micro += 1
            if micro % grad_accum:
                continue
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            next(bar_iter, None)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if step % eval_every == 0 and step < total:
                maybe_select()
                router.model.train()
            if step >= total:
                break
    bar.close()
    router.model.eval()
    maybe_select(force=True)  # the final model is always a candidate
    metrics = {"train_loss": float(np.mean(losses[-50:])) if losses else math.nan}
    if val is not None and len(val):
        metrics.update(val_loss=best["val_loss"], val_accuracy=best["val_accuracy"])
        # The constant predictor "training label frequencies": a model must beat this to have
        # learned anything about prompts (on the real mix, ties dominate).
        metrics.update({f"prior_{k}": v for k, v in prior_metrics(train, val).items()})
    metrics.update(best_step=best.get("best_step", step), steps=step, train_prompts=len(train),
                   val_prompts=len(val) if val is not None else 0)
    return metrics


def split_examples(frame: pd.DataFrame, val_fraction: float, seed: int) -> tuple[Examples, Examples | None]:
    """Split a labelled frame by distinct prompt (``common.split_by_prompt``), then aggregate."""
    from routers.training.common import split_by_prompt

    frame = check_labelled_frame(frame)
    if val_fraction <= 0:
        return aggregate(frame), None
    mask = split_by_prompt(frame["prompt"], val_fraction=val_fraction, seed=seed)
    val = aggregate(frame[mask]) if mask.any() else None
    return aggregate(frame[~mask]), val


def labelled_frame_from_mix(mix: Any = None) -> pd.DataFrame:
    """The strong-vs-weak labelled frame of a training mix (default: the default mix), via
    ``routers.training.data.strong_weak_pairs`` with tiers computed on the data (paper: tiers 0-1
    strong, tier 2 weak). Raises DataError if the data module is not available."""
    from routers.training.common import load_preferences

    prefs = load_preferences(mix)
    try:
        from routers.training.data import strong_weak_pairs
    except ImportError as exc:
        raise DataError(
            "routers.training.data.strong_weak_pairs is not available; pass a labelled frame "
            "(prompt, label, weight) instead"
        ) from exc
    from routers.data.tiers import compute_tiers

    n_models = len(set(prefs["model_a"]) | set(prefs["model_b"]))
    # 10 tiers as in the paper; a small mix (a user's own few models) gets one tier per model.
    return strong_weak_pairs(prefs, compute_tiers(prefs, n_tiers=min(10, n_models)))
