"""Train the pointwise many-model MF quality router (``routers.nway.mf``) on a correctness matrix.

Loss: binary cross-entropy of σ(w2ᵀ(v_M ⊙ (W1ᵀ v_q + b)) + β_M) against every observed outcome
(0/1 correctness, or a score in [0, 1] used as a soft label); NaN cells are skipped. β_M starts at
the logit of the model's mean outcome, so the factorisation only has to learn the per-prompt part.

Hyper-parameters are fixed, not tuned on any evaluation fold: d_m 32, Adam lr 3e-3, weight decay
1e-4, batch 512 cells, at most 40 epochs; 10 % of the *training* prompts (seeded) are held out and
the epoch with the lowest held-out log-loss is kept (early stopping, the same rule as
``routers.training.mf``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from routers.errors import ConfigError, DataError
from routers.nway.base import check_outcomes, check_vocabulary
from routers.nway.mf import MFQualityRouter

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {"dim": 32, "epochs": 40, "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 512,
                            "val_fraction": 0.1}


def _module(dq: int, dm: int, n_models: int, prior: np.ndarray):
    import torch

    class PointwiseMF(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(dq, dm, bias=True)          # W1ᵀ v_q + b
            self.P = torch.nn.Embedding(n_models, dm)                # v_M
            self.w2 = torch.nn.Linear(dm, 1, bias=False)
            self.beta = torch.nn.Embedding(n_models, 1)              # β_M
            with torch.no_grad():
                self.beta.weight.copy_(torch.from_numpy(prior[:, None]).float())

        def forward(self, q, m):
            return self.w2(self.proj(q) * self.P(m)).squeeze(-1) + self.beta(m).squeeze(-1)

    return PointwiseMF()


def fit_mf_quality(emb: np.ndarray, outcomes: np.ndarray, models: Sequence[str], embedder_name: str | None,
                   seed: int = 0, num_threads: int | None = 1, info: dict[str, Any] | None = None,
                   embedder: Any = None, **hyper: Any) -> MFQualityRouter:
    """Fit on embeddings (n, d_q) and outcomes (n, m) in [0, 1] with NaN for missing cells.
    ``hyper`` overrides ``DEFAULTS`` (dim, epochs, lr, weight_decay, batch_size, val_fraction)."""
    import torch

    unknown = sorted(set(hyper) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown N-way mf option(s) {unknown}; known: {sorted(DEFAULTS)}")
    hp = {**DEFAULTS, **hyper}
    if hp["epochs"] < 1 or hp["dim"] < 1 or hp["batch_size"] < 1 or not 0 <= hp["val_fraction"] < 0.5:
        raise ConfigError(f"need epochs, dim, batch_size >= 1 and val_fraction in [0, 0.5), got {hp}")
    models = check_vocabulary(models)
    emb = np.asarray(emb, dtype=np.float32)
    y = check_outcomes(outcomes, emb.shape[0], len(models))
    rows, cols = np.nonzero(~np.isnan(y))
    if len(rows) == 0:
        raise DataError("no observed outcome to train the N-way mf router on")
    have = ~np.isnan(y)
    mean = np.where(have, y, 0).sum(0) / np.maximum(have.sum(0), 1)
    mean = np.clip(np.where(have.any(0), mean, 0.5), 1e-3, 1 - 1e-3)
    prior = np.log(mean / (1 - mean))

    rng = np.random.default_rng(seed)
    held = rng.random(emb.shape[0]) < hp["val_fraction"] if emb.shape[0] >= 20 else np.zeros(emb.shape[0], bool)
    tr, va = ~held[rows], held[rows]
    if num_threads:
        torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    E = torch.from_numpy(emb)
    R, C = torch.from_numpy(rows), torch.from_numpy(cols)
    Y = torch.from_numpy(y[rows, cols].astype(np.float32))
    tr_idx, va_idx = torch.from_numpy(np.nonzero(tr)[0]), torch.from_numpy(np.nonzero(va)[0])
    net = _module(emb.shape[1], hp["dim"], len(models), prior)
    opt = torch.optim.Adam(net.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    gen = torch.Generator().manual_seed(seed)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    best: tuple[float, int, dict] | None = None
    for epoch in range(1, hp["epochs"] + 1):
        net.train()
        order = tr_idx[torch.randperm(len(tr_idx), generator=gen)]
        for start in range(0, len(order), hp["batch_size"]):
            idx = order[start:start + hp["batch_size"]]
            loss = bce(net(E[R[idx]], C[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        if len(va_idx):
            with torch.no_grad():
                val = float(bce(net(E[R[va_idx]], C[va_idx]), Y[va_idx]))
        else:
            val = -epoch  # no held-out prompts: keep the last epoch
        if best is None or val < best[0]:
            best = (val, epoch, copy.deepcopy(net.state_dict()))
    val, epoch, state = best
    params = {"W1": state["proj.weight"].T.numpy(), "b": state["proj.bias"].numpy(),
              "w2": state["w2.weight"][0].numpy(),
              "model_vectors": state["P.weight"].numpy(), "model_bias": state["beta.weight"][:, 0].numpy()}
    summary = {**hp, "seed": seed, "best_epoch": epoch, "n_cells": int(len(rows)), "n_prompts": int(emb.shape[0]),
               **({"val_log_loss": val} if len(va_idx) else {})}
    log.debug("nway mf: %s", summary)
    return MFQualityRouter(params, models, embedder=embedder, embedder_name=embedder_name,
                           info={**(info or {}), "training": summary})
