"""Train the matrix-factorization router (paper Eq. 11-12) on pairs between any two models.

Loss: binary cross-entropy of σ(δ(b, q) − δ(a, q)) against ``p_b_wins`` (soft labels as they are,
ties as 0.5 targets), weighted by the row ``weight``. Paper defaults: d_m 128, Adam lr 3e-4,
weight decay 1e-5, batch 64, 10 epochs. ~5% of the distinct prompts are held out; the epoch with
the lowest validation log-loss is kept (model selection), and its figures form the summary line.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from routers.embeddings import Embedder, embedder_from_spec
from routers.errors import ConfigError, DataError, UnknownModelError
from routers.models.mf import MatrixFactorizationRouter
from routers.registry import default_checkpoint_dir
from routers.training.common import (
    Timer, TrainResult, load_preferences, progress, set_seed, split_by_prompt, tier_groups, tier_table,
)

log = logging.getLogger(__name__)


def _mf_module(dq: int, dm: int, n_models: int):
    import torch

    class MF(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(dq, dm, bias=True)  # W1ᵀ v_q + b
            self.P = torch.nn.Embedding(n_models, dm)  # v_M
            self.w2 = torch.nn.Linear(dm, 1, bias=False)

        def forward(self, q, a, b):
            h = self.proj(q)
            return self.w2(h * (self.P(b) - self.P(a))).squeeze(-1)  # δ(b, q) − δ(a, q)

    return MF()


def _evaluate(net, q, a, b, y, w) -> dict[str, float]:
    """Weighted log-loss over all rows; accuracy over rows with a winner (label != 0.5)."""
    import torch

    with torch.no_grad():
        p = torch.sigmoid(net(q, a, b)).double().clamp(1e-7, 1 - 1e-7)
    y64, w64 = y.double(), w.double()
    ll = -(w64 * (y64 * p.log() + (1 - y64) * (1 - p).log())).sum() / w64.sum()
    decided = (y64 - 0.5).abs() > 1e-9
    if decided.any():
        hit = ((p > 0.5) == (y64 > 0.5)).double()
        acc = float((w64[decided] * hit[decided]).sum() / w64[decided].sum())
    else:
        acc = float("nan")
    return {"log_loss": float(ll), "accuracy": acc}


def train_mf(
    mix: Any = None,
    out_dir: str | Path | None = None,
    embedder: Embedder | str | None = None,
    epochs: int = 10,
    lr: float = 3e-4,
    weight_decay: float = 1e-5,
    batch_size: int = 64,
    dim: int = 128,
    seed: int = 0,
    val_fraction: float = 0.05,
    strong: str | None = None,
    weak: str | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    show_progress: bool | None = None,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train, select the best epoch on the validation prompts, save to ``out_dir`` (default
    ``checkpoints/mf``). ``mix``: None (default mix), a mix / mix file, or a preference DataFrame.
    ``strong``/``weak``: the scoring pair stored in the checkpoint (default: the ``strong`` and
    ``weak`` tier groups). ``groups``: name -> models (default: computed from the tiers).
    ``num_threads``: torch CPU threads while training (default 1: the model is tiny, and on a busy
    machine extra threads spin-wait: 7.5 ms/step on 1 thread vs 106 ms/step on 2 measured here)."""
    import torch

    if epochs < 1 or batch_size < 1 or dim < 1:
        raise ConfigError(f"epochs, batch_size and dim must be >= 1, got {epochs}, {batch_size}, {dim}")
    set_seed(seed)
    out_dir = Path(out_dir) if out_dir else default_checkpoint_dir() / "mf"
    with Timer() as timer:
        df = load_preferences(mix)
        df = df[(df["model_a"] != df["model_b"]) & (df["weight"] > 0)].reset_index(drop=True)
        if df.empty:
            raise DataError("no usable pairs (two different models, weight > 0) in the training data")
        models = sorted(set(df["model_a"]) | set(df["model_b"]))
        if groups is None:
            try:
                groups = tier_groups(tier_table(df))
            except (ImportError, DataError, ConfigError) as exc:
                log.warning("no tier groups for mf (%s); only model names can be scored", exc)
                groups = {}
        strong = strong or "strong"
        weak = weak or "weak"
        for name in (strong, weak):
            if name not in groups and name not in models:
                # fail before training, not after: the pair is checked again by the router
                raise UnknownModelError(
                    f"unknown model or tier {name!r} for --strong/--weak; known groups: {sorted(groups)}; "
                    f"known models: {models}")

        if embedder is None or isinstance(embedder, str):
            embedder = embedder_from_spec(embedder)
        prompts = pd.unique(df["prompt"])
        pidx = pd.Series(np.arange(len(prompts)), index=prompts)
        emb = np.asarray(embedder.embed(list(prompts), progress=show_progress is not False), dtype=np.float32)

        index = {m: i for i, m in enumerate(models)}
        q_row = torch.from_numpy(np.array(pidx[df["prompt"]].to_numpy(), dtype=np.int64))
        a = torch.tensor(df["model_a"].map(index).to_numpy(), dtype=torch.long)
        b = torch.tensor(df["model_b"].map(index).to_numpy(), dtype=torch.long)
        y = torch.tensor(df["p_b_wins"].to_numpy(), dtype=torch.float32)
        w = torch.tensor(df["weight"].to_numpy(), dtype=torch.float32)
        E = torch.from_numpy(np.array(emb, dtype=np.float32))

        val_mask = torch.from_numpy(np.array(split_by_prompt(df["prompt"], val_fraction, seed)))
        tr = torch.nonzero(~val_mask).squeeze(1)
        va = torch.nonzero(val_mask).squeeze(1)
        w_train = w / w[tr].mean()  # mean weight 1 keeps the effective learning rate source-independent

        if num_threads:
            torch.set_num_threads(num_threads)
        net = _mf_module(emb.shape[1], dim, len(models))
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        best, history = None, []
        for epoch in progress(range(1, epochs + 1), "mf epochs", enabled=show_progress):
            net.train()
            order = tr[torch.randperm(len(tr), generator=gen)]
            total, seen = 0.0, 0
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                logits = net(E[q_row[idx]], a[idx], b[idx])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, y[idx], weight=w_train[idx], reduction="sum") / len(idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            net.eval()
            rec = {"epoch": epoch, "train_loss": total / max(seen, 1)}
            if len(va):
                rec.update({f"val_{k}": v for k, v in _evaluate(net, E[q_row[va]], a[va], b[va], y[va], w[va]).items()})
            history.append(rec)
            log.debug("mf epoch %s", rec)
            if best is None or (len(va) and rec["val_log_loss"] < best[0]["val_log_loss"]) or not len(va):
                best = (rec, copy.deepcopy(net.state_dict()))
        rec, state = best
        params = {
            "W1": state["proj.weight"].T.numpy(), "b": state["proj.bias"].numpy(),
            "w2": state["w2.weight"][0].numpy(), "model_vectors": state["P.weight"].numpy(),
        }
        metrics: dict[str, Any] = {
            "best_epoch": rec["epoch"], "train_loss": rec["train_loss"],
            **{k: rec[k] for k in ("val_log_loss", "val_accuracy") if k in rec},
            "n_pairs": len(df), "n_prompts": len(prompts), "n_models": len(models),
        }
        router = MatrixFactorizationRouter(
            params, models, strong, weak, groups=groups, embedder=embedder, embedder_name=embedder.name,
            info={**metrics, "epochs": epochs, "lr": lr, "weight_decay": weight_decay,
                  "batch_size": batch_size, "seed": seed, "val_fraction": val_fraction,
                  "history": history},
        )
        router.save(out_dir)
    result = TrainResult("mf", out_dir, metrics, timer.seconds)
    print(result.summary_line())
    return result
