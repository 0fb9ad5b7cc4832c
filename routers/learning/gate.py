"""The promotion gate: does a candidate trained on the traffic labels route the labelled traffic
better than the serving router, beyond the noise?

Held-out labels: those newer than the serving router's own training labels (its checkpoint's
``info.labels.until``; all of them for a router trained on no traffic). The serving router scores
them as it is. The candidate's recipe (the linear router on the general data + traffic labels) is
**cross-fitted** over every label: k folds (identical prompts share one), each fold scored by a
router trained on the general data and the labels of the other folds, so no label is scored by a
router that saw it. Both are compared by APGR on the held-out labels (strong = P(strong better),
weak = 1 − that: ``routers.learning.labels.pair_scores``) with a paired bootstrap over labels
(``routers.evaluation.protocol.paired_bootstrap``): the candidate is promoted only when the
one-sided 95 % lower bound of the APGR difference (the 5th percentile of 1,000 resamples) is above
``min_gain`` (default 0). One-sided because the question is one-sided: is the candidate better?
(The first version used the two-sided interval's 2.5th percentile; docs/learning.md says what that
changed.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from routers.data.golden import GoldenSource
from routers.evaluation import metrics as m
from routers.evaluation.crossfit import fold_ids
from routers.evaluation.protocol import paired_bootstrap
from routers.learning.labels import pair_scores, targets

log = logging.getLogger(__name__)

MIN_HELD_OUT = 30


def held_out_mask(labels: pd.DataFrame, serving_info: dict[str, Any] | None) -> np.ndarray:
    """Labels the serving router was not trained on (newer than its ``info.labels.until``)."""
    until = ((serving_info or {}).get("labels") or {}).get("until")
    t = labels["time"].to_numpy(dtype=np.float64)
    return np.ones(len(t), dtype=bool) if until is None else t > float(until)


def _apgr(scores, strong, weak) -> float | None:
    try:
        return float(m.apgr(scores, strong, weak))
    except ValueError:  # no gap between strong and weak on these labels: APGR undefined
        return None


def compare(serving_scores_fn, serving_info: dict[str, Any] | None, labels: pd.DataFrame,
            general: Sequence[GoldenSource], embedder, *, k: int = 5, seed: int = 0, labels_weight: float = 1.0,
            min_gain: float = 0.0, n_boot: int = 1000, min_held_out: int = MIN_HELD_OUT) -> dict[str, Any]:
    """The gate's comparison (module docstring) as a JSON-able dict with ``promote`` and ``reason``."""
    from routers.models.linear import fit_linear
    from routers.training.linear import mix_weights

    t = targets(labels)
    prompts = labels["prompt"].astype(str).tolist()
    held = held_out_mask(labels, serving_info)
    out: dict[str, Any] = {"labels": int(len(labels)), "held_out": int(held.sum()), "folds": k,
                           "min_gain": min_gain, "promote": False}
    if held.sum() < min_held_out:
        out["reason"] = (f"only {int(held.sum())} labels newer than the serving router's own training labels; "
                         f"the gate needs {min_held_out}")
        return out
    strong, weak = pair_scores(t[held])
    if float(np.mean(strong) - np.mean(weak)) == 0:
        out["reason"] = "the held-out labels show no gap between the models (APGR undefined)"
        return out
    emb = embedder.embed(prompts)
    g_prompts = [p for s in general for p in s.prompts]
    g_emb = embedder.embed(g_prompts) if g_prompts else np.zeros((0, emb.shape[1]))
    g_y = np.concatenate([s.targets for s in general]) if general else np.zeros(0)
    sizes = {s.name: len(s) for s in general}
    sizes["traffic"] = 0
    folds = fold_ids(prompts, min(k, len(set(prompts))), seed)
    cand = np.full(len(prompts), np.nan)
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        if not (test & held).any():
            continue
        sizes["traffic"] = int(train.sum())
        sw = mix_weights(sizes, labels_weight)
        w = np.concatenate([np.full(len(s), sw[s.name]) for s in general] + [np.full(int(train.sum()), sw["traffic"])])
        tr_prompts = g_prompts + [p for p, keep in zip(prompts, train) if keep]
        router = fit_linear(tr_prompts, np.vstack([g_emb, emb[train]]), np.concatenate([g_y, t[train]]), w)
        idx = np.flatnonzero(test & held)
        cand[idx] = router.score_with_embeddings([prompts[i] for i in idx], emb[idx])
    held_prompts = [p for p, h in zip(prompts, held) if h]
    serv = np.asarray(serving_scores_fn(held_prompts), dtype=np.float64)
    c = cand[held]
    out["serving_apgr"] = _apgr(serv, strong, weak)
    out["candidate_apgr"] = _apgr(c, strong, weak)
    boot = paired_bootstrap(c, serv, strong, weak, n_boot=n_boot, seed=seed, quantiles=(0.05, 0.95))
    out["diff"], out["diff_lo"], out["diff_hi"] = boot["diff"], boot["lo"], boot["hi"]
    out["promote"] = bool(boot["lo"] > min_gain)
    out["reason"] = (f"candidate beats the serving router beyond the noise (one-sided 95 % lower bound of "
                     f"the APGR difference {boot['lo']:+.3f} > {min_gain:+.3f})" if out["promote"] else
                     f"not beyond the noise: one-sided 95 % lower bound of the APGR difference "
                     f"{boot['lo']:+.3f} is not above {min_gain:+.3f}")
    return out


def format_comparison(res: dict[str, Any]) -> str:
    """The dry run's printout."""
    lines = [f"labels: {res['labels']} (held out from the serving router: {res['held_out']}), "
             f"{res['folds']}-fold cross-fitted candidate"]
    if "serving_apgr" in res:
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"  serving   APGR {fmt(res['serving_apgr'])}")
        lines.append(f"  candidate APGR {fmt(res['candidate_apgr'])}")
        lines.append(f"  difference {res['diff']:+.3f}  90 % interval [{res['diff_lo']:+.3f}, {res['diff_hi']:+.3f}] "
                     "(its lower end: the one-sided 95 % bound)")
    lines.append(("PROMOTE: " if res["promote"] else "KEEP the serving router: ") + res["reason"])
    return "\n".join(lines)
