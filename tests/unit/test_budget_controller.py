"""The budget controller's math (``routers.budget``): quantile tracking with the deficit correction
holds a target share through a shift of the score distribution; dollar targets convert to shares."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routers.base import strong_mask
from routers.budget import CostTracker, ShareController, Target, share_for_usd
from routers.calibration import threshold_for_fraction
from routers.errors import ConfigError


def shifted_scores(n_phase: int = 2000, seed: int = 0) -> np.ndarray:
    """Three phases whose score distributions differ a lot (as AlpacaEval, GSM8K, MMLU do)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.beta(2, 3, n_phase), rng.beta(5, 2, n_phase), rng.beta(3, 3, n_phase)])


def worst_window(strong: np.ndarray, target: float, n_phase: int = 2000, skip: int = 200, w: int = 500) -> float:
    worst = 0.0
    for start in range(0, len(strong), n_phase):
        cs = np.cumsum(np.concatenate([[0], strong[start + skip:start + n_phase]]))
        share = (cs[w:] - cs[:-w]) / w
        worst = max(worst, float(np.max(np.abs(share - target))))
    return worst


def test_controller_holds_every_window_while_static_alpha_drifts():
    s = shifted_scores()
    static = threshold_for_fraction(s[:500], 0.3)
    drift = max(abs(float(np.mean(strong_mask(s[i:i + 2000], static))) - 0.3) for i in (0, 2000, 4000))
    assert drift > 0.2  # the baseline really drifts on this stream
    c = ShareController(0.3)
    strong = np.array([c.decide(p)[0] for p in s])
    assert worst_window(strong, 0.3) <= 0.03
    assert abs(strong.mean() - 0.3) < 0.01


def test_controller_holds_with_delayed_feedback():
    """Replicas feed back in batches after a sync delay; the share still holds."""
    s = shifted_scores(seed=1)
    c = ShareController(0.3)
    alpha, strong, pending = c.alpha, [], []
    for p in s:
        x = bool(strong_mask([p], alpha)[0])
        strong.append(x)
        pending.append((p, x))
        if len(pending) == 5:
            c.observe([q for q, _ in pending], [y for _, y in pending])
            pending, alpha = [], c.alpha
    assert worst_window(np.array(strong), 0.3) <= 0.03


@pytest.mark.parametrize("target", [0.0, 1.0])
def test_extreme_targets(target):
    c = ShareController(target)
    strong = [c.decide(p)[0] for p in np.random.default_rng(2).random(300)]
    assert np.mean(strong) == target


def test_state_round_trip_resumes_the_same_alpha():
    c = ShareController(0.4)
    for p in np.random.default_rng(3).random(150):
        c.decide(p)
    d = ShareController.from_state(c.state())
    assert d.alpha == c.alpha and d.deficit == c.deficit and d.n == 150


def test_bad_targets_name_the_value():
    with pytest.raises(ConfigError, match="1.5"):
        Target("share", 1.5)
    with pytest.raises(ConfigError, match="-2"):
        Target("usd_per_hour", -2)
    with pytest.raises(ConfigError, match="nan"):
        Target("usd_per_1k_requests", math.nan)
    with pytest.raises(ConfigError):
        ShareController(-0.1)


def test_share_for_usd():
    # 1000 req/h, strong $0.01, weak $0.001: $4/h -> 4/1000 = 0.004 per request -> (0.004-0.001)/0.009
    assert share_for_usd(Target("usd_per_hour", 4.0), 1000, 0.01, 0.001) == pytest.approx(1 / 3)
    assert share_for_usd(Target("usd_per_1k_requests", 4.0), 1, 0.01, 0.001) == pytest.approx(1 / 3)
    assert share_for_usd(Target("usd_per_hour", 0.0), 1000, 0.01, 0.001) == 0.0
    assert share_for_usd(Target("usd_per_hour", 1e9), 1000, 0.01, 0.001) == 1.0
    assert share_for_usd(Target("usd_per_hour", 1.0), 0, 0.01, 0.0) == 1.0  # no traffic yet
    assert share_for_usd(Target("share", 0.25), 5, 1, 0) == 0.25


def test_cost_tracker_learns_cost_and_rate():
    t = CostTracker(prior_usd_strong=1.0, prior_usd_weak=0.0, memory=50)
    for _ in range(200):
        t.record_cost("strong", 0.02)
    assert t.usd["strong"] == pytest.approx(0.02, rel=1e-3)
    for i in range(60):
        t.record_requests(1000.0 + i, 10)  # 10 req/s for a minute
    assert t.requests_per_hour(1060.0) == pytest.approx(36000, rel=0.05)
    assert t.share_for(Target("usd_per_hour", 360.0), 1060.0) == pytest.approx(0.5, rel=0.05)
