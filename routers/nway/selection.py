"""The one selection rule of N-way routing.

Given each candidate model's predicted quality q_i in [0, 1] and its estimated cost c_i (USD for
this request, or any unit: only ratios matter), rank the candidates by

    score_i = q_i − λ · c_i / max_j c_j                                 (rule "cost", the default)

λ ≥ 0 is the one knob (``router-<name>-cost<λ>``), in quality per price range: at λ = 0.2 the
priciest candidate must be predicted 0.2 better than a free one to be chosen. 0 picks the best
predicted quality whatever it costs; a large λ picks the cheapest.
Prices are relative to the priciest candidate so that λ means the same for cheap and dear fleets.
Ties go to the cheaper model, then to the earlier one in the list.

Alternative (rule "within"): the cheapest model whose predicted quality is within τ of the best
predicted; the others follow by quality. The order after the first is the fallback order.

Serving (one prompt, ``rank``) and evaluation (many prompts, ``order``) both call ``order``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from routers.errors import ConfigError

Rule = Literal["cost", "within"]


def validate_knob(value: float, rule: Rule = "cost") -> float:
    """λ (rule ``cost``) or τ (rule ``within``) as a float, finite and >= 0 (τ also <= 1)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"the {'cost weight λ' if rule == 'cost' else 'quality margin τ'} must be a number, "
                          f"got {value!r}") from None
    if rule not in ("cost", "within"):
        raise ConfigError(f"selection rule must be 'cost' or 'within', got {rule!r}")
    if not math.isfinite(v) or v < 0 or (rule == "within" and v > 1):
        limit = ">= 0" if rule == "cost" else "in [0, 1]"
        raise ConfigError(f"the {'cost weight λ' if rule == 'cost' else 'quality margin τ'} must be {limit}, got {value!r}")
    return v


def relative_cost(cost: np.ndarray) -> np.ndarray:
    """Costs divided by the row's largest (all zero stays zero)."""
    c = np.asarray(cost, dtype=np.float64)
    if np.any(~np.isfinite(c)) or np.any(c < 0):
        raise ConfigError("costs must be finite and >= 0")
    top = c.max(axis=-1, keepdims=True)
    return np.divide(c, top, out=np.zeros_like(c), where=top > 0)


def order(quality: np.ndarray, cost: np.ndarray, knob: float, rule: Rule = "cost") -> np.ndarray:
    """Candidate indices best first, shape (n, m), for qualities (n, m) and costs (n, m) or (m,)."""
    q = np.atleast_2d(np.asarray(quality, dtype=np.float64))
    c = np.broadcast_to(np.asarray(cost, dtype=np.float64), q.shape)
    knob = validate_knob(knob, rule)
    rel = relative_cost(c)
    m = q.shape[1]
    position = np.broadcast_to(np.arange(m), q.shape)
    if rule == "cost":
        score = q - knob * rel
        # lexsort's last key is the primary one: best score first, then cheaper, then earlier
        return np.lexsort((position, rel, -score), axis=-1)
    within = q >= q.max(axis=1, keepdims=True) - knob - 1e-12
    # within-τ models first (cheapest first), the rest by quality (then cheaper, then earlier)
    key_in = np.where(within, rel, -q)
    return np.lexsort((position, rel, key_in, (~within).astype(np.int64)), axis=-1)


def choose(quality: np.ndarray, cost: np.ndarray, knob: float, rule: Rule = "cost") -> np.ndarray:
    """The chosen candidate index per prompt, shape (n,)."""
    return order(quality, cost, knob, rule)[:, 0]


@dataclass(frozen=True)
class Candidate:
    """One model of a ranking, as ``/v1/route`` reports it."""

    model: str
    quality: float          # predicted quality in [0, 1]
    cost: float             # estimated cost of this request on this model (USD)
    relative_cost: float    # cost / the priciest candidate's
    score: float            # quality − λ · relative_cost (rule "cost"); quality for "within"


def rank(models: Sequence[str], quality: Sequence[float], cost: Sequence[float], knob: float,
         rule: Rule = "cost") -> list[Candidate]:
    """All candidates of one prompt, best first (the fallback order)."""
    q = np.asarray(quality, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if not (len(models) == q.shape[0] == c.shape[0]) or q.ndim != 1 or len(models) == 0:
        raise ConfigError(f"rank needs one quality and one cost per model: {len(models)} models, "
                          f"{q.shape} qualities, {c.shape} costs")
    idx = order(q[None, :], c, knob, rule)[0]
    rel = relative_cost(c)
    score = q - validate_knob(knob, rule) * rel if rule == "cost" else q
    return [Candidate(str(models[i]), float(q[i]), float(c[i]), float(rel[i]), float(score[i])) for i in idx]
