"""Budget control: move the cost threshold α online so that the realised strong-call share tracks a
target, and turn dollar targets into share targets. Plain numpy; the serving layer
(``deployments.budget``) keeps these objects in one shared place and syncs replicas with it.

The controller (``ShareController``), per target key:

- **quantile tracking**: α is the threshold that would have sent a share ``s_eff`` of the last
  ``window`` router scores strong (``routers.calibration.threshold_for_fraction``, the same rule
  as start-up calibration, ties included);
- **correction from the realised share**: ``s_eff = clip(s* + D / horizon, 0, 1)``, where ``D`` is
  the deficit of strong calls, ``D = Σ λ^(t-i) (s* - strong_i)`` with ``λ = 1 - 1/memory``. A
  shortfall of D strong calls is made up over about ``horizon`` requests. Quantile tracking alone
  holds the share only on average (a window of 500 Bernoulli(0.3) calls has a standard deviation
  of 2 points) and lags a shift of the traffic mix by a window; the deficit term removes both.

Dollar targets (``share_for_usd``): with request rate λ (requests per hour) and the mean realised
cost of a strong and of a weak request (``c_s``, ``c_w``, from token usage times prices), a share s
spends ``λ (s c_s + (1 - s) c_w)`` per hour; the share that spends the budget B is
``(B/λ - c_w) / (c_s - c_w)`` clipped to [0, 1] (per 1,000 requests: ``B/1000`` in place of
``B/λ``). The controller then holds that share.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from routers.base import strong_mask
from routers.calibration import threshold_for_fraction
from routers.errors import ConfigError

TargetKind = Literal["share", "usd_per_hour", "usd_per_1k_requests"]
TARGET_KINDS: tuple[str, ...] = ("share", "usd_per_hour", "usd_per_1k_requests")


@dataclass(frozen=True)
class Target:
    """What a controller holds: a strong-call share in [0, 1], or dollars per hour / per 1,000 requests."""

    kind: TargetKind
    value: float

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ConfigError(f"budget target kind {self.kind!r} is not one of {list(TARGET_KINDS)}")
        v = self.value
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"budget target {self.kind} must be a finite number >= 0, got {v!r}")
        if self.kind == "share" and v > 1:
            raise ConfigError(f"a strong share must be in [0, 1], got {v!r}")

    def label(self) -> str:
        return f"{self.kind}={self.value:g}"


def share_for_usd(target: Target, requests_per_hour: float, usd_strong: float, usd_weak: float) -> float:
    """The strong share that spends ``target`` (a dollar target), clipped to [0, 1]."""
    if target.kind == "share":
        return float(target.value)
    per_request = target.value / 1000.0 if target.kind == "usd_per_1k_requests" else (
        target.value / requests_per_hour if requests_per_hour > 0 else math.inf)
    gap = usd_strong - usd_weak
    if gap <= 0:  # strong calls cost no more than weak ones: nothing to save
        return 1.0
    return float(min(1.0, max(0.0, (per_request - usd_weak) / gap)))


class ShareController:
    """Holds the strong share of one stream of decisions at ``target_share`` (see the module doc).

    ``alpha`` is the threshold to use for the next decisions; ``observe`` feeds back what was
    decided (the router's scores and whether each went strong), in order."""

    def __init__(self, target_share: float, *, window: int = 200, horizon: float = 25.0, memory: int = 2000,
                 initial_alpha: float | None = None, prior_scores: Iterable[float] = ()) -> None:
        if not 0.0 <= target_share <= 1.0:
            raise ConfigError(f"a strong share must be in [0, 1], got {target_share!r}")
        if window < 1 or horizon <= 0 or memory < 1:
            raise ConfigError(f"controller window/horizon/memory must be positive, got {window}/{horizon}/{memory}")
        self.target_share = float(target_share)
        self.window = int(window)
        self.horizon = float(horizon)
        self.decay = 1.0 - 1.0 / float(memory)
        self.scores: deque[float] = deque(prior_scores, maxlen=self.window)
        self.recent: deque[bool] = deque(maxlen=self.window)  # realised decisions, for reporting
        self.deficit = 0.0
        self.n = 0
        self.n_strong = 0
        self._initial = initial_alpha if initial_alpha is not None else 1.0 - self.target_share
        self._alpha = self._initial
        self._dirty = True

    # --- the loop --------------------------------------------------------------------------------

    def effective_share(self) -> float:
        return min(1.0, max(0.0, self.target_share + self.deficit / self.horizon))

    @property
    def alpha(self) -> float:
        if self._dirty:
            self._alpha = self._compute()
            self._dirty = False
        return self._alpha

    def _compute(self) -> float:
        share = self.effective_share()
        if share >= 1.0 or share <= 0.0:  # all / none (a score of exactly 1.0 still goes strong)
            return 0.0 if share >= 1.0 else 1.0
        if not self.scores:
            return float(self._initial)
        return threshold_for_fraction(np.fromiter(self.scores, dtype=np.float64), share)

    def observe(self, scores: Sequence[float], strong: Sequence[bool]) -> None:
        """Feed back decisions in the order they were made."""
        if len(scores) != len(strong):
            raise ValueError(f"{len(scores)} scores but {len(strong)} decisions")
        s = self.target_share
        for p, x in zip(scores, strong):
            self.scores.append(float(p))
            self.recent.append(bool(x))
            self.deficit = self.decay * self.deficit + (s - float(bool(x)))
            self.n += 1
            self.n_strong += bool(x)
        if len(scores):
            self._dirty = True

    def set_target(self, target_share: float) -> None:
        """A new share (a dollar target re-converted); the deficit is kept."""
        target_share = min(1.0, max(0.0, float(target_share)))
        if target_share != self.target_share:
            self.target_share = target_share
            self._dirty = True

    def decide(self, p_strong: float) -> tuple[bool, float]:
        """(strong?, α used) for one score, with the one threshold rule, then observe it. For in-process
        use (simulation, benchmarks); the server splits this across replicas and the shared state."""
        a = self.alpha
        strong = bool(strong_mask([p_strong], a)[0])
        self.observe([p_strong], [strong])
        return strong, a

    # --- reporting and persistence ------------------------------------------------------------------

    def realised_share(self) -> float | None:
        return (sum(self.recent) / len(self.recent)) if self.recent else None

    def state(self) -> dict[str, Any]:
        return {"target_share": self.target_share, "window": self.window, "horizon": self.horizon,
                "memory": round(1.0 / (1.0 - self.decay)), "scores": list(self.scores), "recent": list(self.recent),
                "deficit": self.deficit, "n": self.n, "n_strong": self.n_strong, "initial_alpha": self._initial}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "ShareController":
        c = cls(state["target_share"], window=state["window"], horizon=state["horizon"], memory=state["memory"],
                initial_alpha=state.get("initial_alpha"), prior_scores=state["scores"])
        c.recent.extend(bool(x) for x in state["recent"])
        c.deficit, c.n, c.n_strong = float(state["deficit"]), int(state["n"]), int(state["n_strong"])
        return c


class CostTracker:
    """Realised cost per strong and per weak request (exponentially weighted means) and the request
    rate over the last ``rate_window_s`` seconds, for converting a dollar target into a share."""

    def __init__(self, prior_usd_strong: float, prior_usd_weak: float, *, memory: int = 200,
                 rate_window_s: float = 600.0, min_span_s: float = 10.0) -> None:
        self.usd = {"strong": float(prior_usd_strong), "weak": float(prior_usd_weak)}
        self.counted = {"strong": 0, "weak": 0}
        self.weight = 1.0 / float(memory)
        self.rate_window_s = float(rate_window_s)
        self.min_span_s = float(min_span_s)
        self.arrivals: deque[tuple[float, int]] = deque()  # (time, requests)
        self.first_t: float | None = None

    def record_cost(self, route: str, usd: float) -> None:
        """One request's realised cost; the first few replace the prior quickly (running mean)."""
        self.counted[route] += 1
        w = max(self.weight, 1.0 / self.counted[route])
        self.usd[route] += w * (float(usd) - self.usd[route])

    def record_requests(self, t: float, n: int) -> None:
        if n <= 0:
            return
        self.first_t = t if self.first_t is None else self.first_t
        self.arrivals.append((t, n))
        while self.arrivals and self.arrivals[0][0] < t - self.rate_window_s:
            self.arrivals.popleft()

    def requests_per_hour(self, now: float) -> float:
        if self.first_t is None:
            return 0.0
        span = min(self.rate_window_s, max(self.min_span_s, now - self.first_t))
        n = sum(k for t, k in self.arrivals if t >= now - self.rate_window_s)
        return n * 3600.0 / span

    def share_for(self, target: Target, now: float) -> float:
        return share_for_usd(target, self.requests_per_hour(now), self.usd["strong"], self.usd["weak"])
