"""bench-budget's analysis on synthetic records (no server): the window check fails when a window
leaves the band, the static baseline's drift is per phase, PGR at equal share, APGR replay."""

from __future__ import annotations

import numpy as np
import pytest

from bench.budget import analyse, simulate_apgr, window_shares


def _stream(n=1000):
    rng = np.random.default_rng(0)
    out = []
    for phase in ("alpaca_eval", "gsm8k", "mmlu"):
        for _ in range(n):
            s = float(rng.random() < 0.8)
            out.append({"phase": phase, "prompt": "x", "strong": None if phase == "alpaca_eval" else s,
                        "weak": None if phase == "alpaca_eval" else float(rng.random() < 0.6)})
    return out


def _records(strong, p):
    return [{"p_strong": float(q), "threshold": 0.5, "strong": bool(x)} for q, x in zip(p, strong)]


def test_window_shares():
    assert window_shares(np.array([1, 0, 1, 1]), 2).tolist() == [0.5, 0.5, 1.0]


def test_analyse_passes_an_exact_share_and_fails_a_drift():
    stream = _stream()
    n = len(stream)
    exact = np.zeros(n, bool)
    exact[::10], exact[1::10], exact[2::10] = True, True, True  # exactly 30 % in every window of 500
    p = np.linspace(0, 1, n)  # scores rise: a static α drifts up phase by phase
    a = analyse(_records(exact, p), stream, 0.3, alpha_static=0.6, window=500, skip=200)
    assert a["every_window_within_tolerance"] and a["overall_share"] == pytest.approx(0.3)
    assert a["phases"]["alpaca_eval"]["static_share"] == 0.0 and a["phases"]["mmlu"]["static_share"] > 0.9
    drift = exact.copy()
    drift[2500:2700] = True  # 200 extra strong calls in MMLU: a window far above the band
    b = analyse(_records(drift, p), stream, 0.3, alpha_static=0.6, window=500, skip=200)
    assert not b["every_window_within_tolerance"]
    assert b["phases"]["mmlu"]["worst_window_deviation_points"] > 3
    q = a["quality"]
    assert q["requests"] == 2000 and q["static_equal_share"] == pytest.approx(q["controller_share"], abs=0.01)


def test_simulated_apgr_of_a_controller_on_informative_scores_beats_random():
    stream = _stream(600)
    lab = np.array([s["strong"] is not None for s in stream])
    gain = np.array([(s["strong"] or 0) - (s["weak"] or 0) for s in stream])
    p = np.clip(0.5 + 0.3 * gain + np.random.default_rng(1).normal(0, 0.1, len(stream)), 0, 1)
    res = simulate_apgr(p, stream)
    assert res["static_apgr"] > 0.6 and res["controller_apgr"] > 0.6
    assert len(res["controller_shares"]) == 11 and lab.sum() == 1200
