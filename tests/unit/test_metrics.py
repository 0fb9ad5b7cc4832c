"""Metrics as the paper / RouteLLM define them, on hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pytest

from routers.base import strong_mask
from routers.evaluation import metrics as m
from tests.fakes import HARD_WORDS, synthetic_benchmark


def test_perfect_and_inverse_router_on_hand_example():
    strong = np.array([1, 1, 1, 0.0])
    weak = np.array([0, 0, 1, 0.0])  # gains 1, 1, 0, 0 ; gap = 0.5
    good = np.array([0.9, 0.8, 0.2, 0.1])
    # PGR at c = 0, .25, .5, .75, 1 : 0, .5, 1, 1, 1
    assert m.pgr_curve(good, strong, weak, [0, .25, .5, .75, 1]).tolist() == [0, .5, 1, 1, 1]
    # 5-point trapezoid: .25 * (0/2 + .5 + 1 + 1 + 1/2) = .75
    assert m.apgr(good, strong, weak, n_grid=5) == pytest.approx(0.75)
    bad = -good
    assert m.pgr_curve(bad, strong, weak, [0.5]).tolist() == [0.0]
    assert m.cpt(good, strong, weak, 0.5, n_grid=5) == pytest.approx(0.25)
    assert m.cpt(bad, strong, weak, 0.5, n_grid=5) == pytest.approx(0.75)  # PGR 0,0,0,.5,1


def test_eq4_to_6_at_threshold_use_strong_mask():
    strong = np.array([1, 1, 0, 1.0])
    weak = np.array([0, 1, 0, 0.0])
    scores = np.array([0.7, 0.5, 0.5, 0.1])
    assert m.strong_fraction(scores, 0.5) == 0.75 == strong_mask(scores, 0.5).mean()
    assert m.quality_at_threshold(scores, strong, weak, 0.5) == pytest.approx(0.5)
    # r_weak = .25, r_strong = .75 -> PGR = (.5 - .25)/.5
    assert m.pgr_at_threshold(scores, strong, weak, 0.5) == pytest.approx(0.5)


def test_ties_get_expected_value_not_order():
    strong = np.array([1, 0, 1, 0.0])
    weak = np.zeros(4)
    const = np.full(4, 0.3)
    # constant router = random router in expectation: PGR(c) = c
    assert np.allclose(m.pgr_curve(const, strong, weak, m.REFERENCE_GRID), m.REFERENCE_GRID)
    assert m.apgr(const, strong, weak) == pytest.approx(0.5)
    # reordering rows inside a tie group changes nothing
    perm = [1, 0, 3, 2]
    assert m.apgr(const[perm], strong[perm], weak[perm]) == pytest.approx(0.5)
    # partial tie: top score unique, then a 3-way tie
    s2 = np.array([0.9, 0.2, 0.2, 0.2])
    strong2 = np.array([0, 1, 1, 0.0])
    g = m.cumulative_gain(s2, strong2, weak)
    assert g.tolist() == pytest.approx([0, 0, 2 / 3, 4 / 3, 2])


def test_random_router_near_half_and_oracle_is_upper_bound():
    _, strong, weak = synthetic_benchmark(n=2000, seed=3)
    rng = np.random.default_rng(0)
    vals = [m.apgr(rng.random(len(strong)), strong, weak) for _ in range(200)]
    assert abs(np.mean(vals) - 0.5) < 0.01
    oracle = m.oracle_apgr(strong, weak)
    assert oracle > max(vals) and oracle <= 1.5
    # oracle never loses quality: its PGR curve is non-decreasing and reaches >= 1
    curve = m.oracle_pgr_curve(strong, weak, np.linspace(0, 1, 51))
    assert np.all(np.diff(curve) >= -1e-12) and curve[-1] >= 1.0
    # the gain-sorted router equals the oracle until the gains turn negative
    d = strong - weak
    assert m.pgr_curve(d, strong, weak, [0.1])[0] == pytest.approx(m.oracle_pgr_curve(strong, weak, [0.1])[0])


def test_matches_reference_procedure_for_distinct_scores():
    prompts, strong, weak = synthetic_benchmark(n=1000, seed=5)
    rng = np.random.default_rng(1)
    hard = np.array([any(w in p.lower() for w in HARD_WORDS) for p in prompts], dtype=float)
    scores = hard + rng.random(len(prompts))  # informative, all distinct
    ref = m.reference_apgr(scores, strong, weak)
    ours = m.summarize(scores, strong, weak)
    assert ours["apgr"] == pytest.approx(ref["apgr"], abs=2e-3)
    assert ours["cpt50"] == pytest.approx(ref["cpt50"], abs=2e-3)
    assert ours["cpt80"] == pytest.approx(ref["cpt80"], abs=2e-3)
    assert ours["auc"] == pytest.approx(ref["auc"] / 100, abs=2e-3)
    assert ours["apgr"] > 0.55  # the informative router beats random


def test_apgr_is_trapezoid_not_plain_mean():
    # a router whose curve is PGR(c) = c: trapezoid gives .5, Eq. 8's plain mean of 10 points .55
    strong, weak = np.ones(10), np.zeros(10)
    assert m.apgr(np.arange(10.0), strong, weak) == pytest.approx(0.5)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="same"):
        m.apgr([0.1, 0.2], [1, 0], [1, 0])
    with pytest.raises(ValueError, match="1-D"):
        m.apgr([0.1], [1, 0], [1, 0])
    with pytest.raises(ValueError, match="NaN"):
        m.apgr([np.nan, 0.2], [1, 0], [0, 0])
    with pytest.raises(ValueError, match="n_grid"):
        m.apgr([0.1, 0.2], [1, 0], [0, 0], n_grid=1)
