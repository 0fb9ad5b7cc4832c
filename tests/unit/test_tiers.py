"""Model tiers: exact DP clustering, Bradley-Terry recovery, TierTable API, the real-data ordering."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from cli.main import main as cli_main
from routers.data.aliases import STRONG_DEFAULT, WEAK_DEFAULT
from routers.data.tiers import (ELO_SCALE, TierTable, battle_components, cluster_tiers,
                                compute_tiers, fit_bradley_terry, tiers)
from routers.errors import ConfigError, UnknownModelError

# --- the DP is exact -------------------------------------------------------------------------------


def _set_partitions(items):
    """Every partition of ``items`` into non-empty blocks (Bell(n) of them)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        yield [[first]] + part
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]


def _cost(values, groups):
    return sum(float(((values[g] - values[g].mean()) ** 2).sum()) for g in groups)


def test_dp_matches_brute_force_over_all_partitions():
    rng = np.random.default_rng(0)
    for trial in range(12):
        n = int(rng.integers(2, 9))
        v = np.round(rng.normal(1000, 150, size=n), 1)
        if trial % 4 == 0:
            v[1] = v[0]  # duplicate ratings must not break exactness
        for k in range(1, min(n, 4) + 1):
            best = min(_cost(v, p) for p in _set_partitions(list(range(n))) if len(p) == k)
            t = np.array(cluster_tiers(v, k))
            assert sorted(set(t.tolist())) == list(range(k))
            groups = [np.flatnonzero(t == i) for i in range(k)]
            assert _cost(v, groups) == pytest.approx(best, abs=1e-6), (v, k)


def test_dp_tiers_are_ordered_best_first():
    v = [10.0, 900.0, 20.0, 910.0, 500.0, 15.0]
    assert cluster_tiers(v, 3) == [2, 0, 2, 0, 1, 2]
    assert cluster_tiers(v, 1) == [0] * 6
    assert cluster_tiers(v, 6) == list(np.argsort(np.argsort(-np.array(v))))


@pytest.mark.parametrize("k", [0, 7, 2.5])
def test_dp_rejects_bad_tier_counts(k):
    with pytest.raises(ConfigError, match="n_tiers"):
        cluster_tiers([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], k)


# --- Bradley-Terry ---------------------------------------------------------------------------------


def _battles(true_elo: dict, n: int, seed: int, tie_rate: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = list(true_elo)
    rows = []
    for _ in range(n):
        a, b = rng.choice(len(names), size=2, replace=False)
        pb = 1 / (1 + 10 ** ((true_elo[names[a]] - true_elo[names[b]]) / 400))
        u = rng.random()
        if u < tie_rate:
            rows.append((names[a], names[b], 0.5, True))
        else:
            rows.append((names[a], names[b], float(rng.random() < pb), False))
    df = pd.DataFrame(rows, columns=["model_a", "model_b", "p_b_wins", "tie"])
    df["prompt"], df["weight"], df["source"] = "a prompt that is long enough", 1.0, "sim"
    return df


def test_bt_recovers_known_ordering():
    truth = {"m0": 1300, "m1": 1200, "m2": 1100, "m3": 1000, "m4": 900, "m5": 700}
    r = fit_bradley_terry(_battles(truth, 6000, seed=1, tie_rate=0.0))
    assert list(r.index) == list(truth)
    centred = np.array(list(truth.values()), float) - np.mean(list(truth.values()))
    np.testing.assert_allclose(r[list(truth)].to_numpy() - 1000, centred, atol=40)
    assert r.mean() == pytest.approx(1000)
    # random ties (half a win each) shrink the scale towards the mean but keep the order
    with_ties = fit_bradley_terry(_battles(truth, 6000, seed=1, tie_rate=0.2))
    assert list(with_ties.index) == list(truth)
    assert with_ties.max() - with_ties.min() < r.max() - r.min()


def test_bt_soft_labels_and_weights():
    # one pair, b wins with probability 0.75: MLE log-odds = ln 3, i.e. 400 log10(3) Elo points
    df = pd.DataFrame({"prompt": ["p" * 20] * 2, "model_a": ["a", "a"], "model_b": ["b", "b"],
                       "p_b_wins": [0.75, 0.75], "tie": False, "weight": [1000.0, 1000.0], "source": "x"})
    r = fit_bradley_terry(df)
    assert r["b"] - r["a"] == pytest.approx(ELO_SCALE * np.log(3), rel=1e-3)
    # hard labels 3:1 by weight give the same answer
    hard = df.assign(p_b_wins=[1.0, 0.0], weight=[1500.0, 500.0])
    assert fit_bradley_terry(hard)["b"] - fit_bradley_terry(hard)["a"] == pytest.approx(r["b"] - r["a"], rel=1e-6)
    ties = df.assign(p_b_wins=0.5, tie=True)
    assert fit_bradley_terry(ties)["b"] == pytest.approx(fit_bradley_terry(ties)["a"])


def test_bt_undefeated_and_disconnected_stay_finite(caplog):
    df = pd.concat([
        _battles({"x": 1200, "y": 1000}, 50, seed=2, tie_rate=0).assign(model_a="y", model_b="x", p_b_wins=1.0),
        _battles({"p": 1000, "q": 900, "r": 800}, 300, seed=3),
    ], ignore_index=True)
    assert battle_components(df) == [["p", "q", "r"], ["x", "y"]]
    with caplog.at_level(logging.WARNING):
        table = compute_tiers(df, n_tiers=2)
    assert "2 components" in caplog.text
    assert np.all(np.isfinite(table.ratings.to_numpy()))
    assert table.ratings["x"] > table.ratings["y"]


# --- TierTable -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_table():
    truth = {"big-1": 1400, "big-2": 1380, "mid-1": 1100, "mid-2": 1090, "small": 800}
    return compute_tiers(_battles(truth, 3000, seed=4), n_tiers=3)


def test_tier_table_api(small_table, tmp_path):
    t = small_table
    assert t.n_tiers == 3 and t.models_in(0) == ["big-1", "big-2"] and t.models_in(2) == ["small"]
    assert t.strong_models((0,)) == ["big-1", "big-2"] and t.weak_models((1, 2)) == ["mid-1", "mid-2", "small"]
    assert sum(t.battles.values()) == 2 * 3000
    with pytest.raises(UnknownModelError, match=r"'nope'.*known models: \['big-1'"):
        t.tier_of("nope")
    with pytest.raises(ConfigError, match="tiers are 0..2"):
        t.models_in(3)
    back = TierTable.load_json(t.save_json(tmp_path / "t.json"))
    assert back.to_dict() == t.to_dict() and list(back.ratings.index) == list(t.ratings.index)
    text = t.format_table()
    assert all(m in text for m in t.tiers) and len(text.splitlines()) == 6


def test_tier_table_bad_dict():
    from routers.errors import DataError

    with pytest.raises(DataError, match="'ratings' and 'tiers'"):
        TierTable.from_dict({"ratings": {"a": 1.0}})
    with pytest.raises(DataError, match=r"different models: \['b'\]"):
        TierTable.from_dict({"ratings": {"a": 1.0}, "tiers": {"a": 0, "b": 1}})


# --- the real data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_table(shared_data):
    return tiers(paths={"alpaca_eval": shared_data / "preferences/alpaca_eval",
                        "routerbench": shared_data / "preferences/routerbench"})


def test_real_tiers_order_gpt4_above_mixtral(real_table):
    assert real_table.n_tiers == 10
    assert real_table.tier_of("gpt4_1106_preview") < real_table.tier_of("mistralai/mixtral-8x7b-chat")
    assert real_table.ratings[STRONG_DEFAULT] > real_table.ratings[WEAK_DEFAULT]
    assert STRONG_DEFAULT in real_table.strong_models()
    assert WEAK_DEFAULT in real_table.weak_models((real_table.tier_of(WEAK_DEFAULT),))
    # tiers are contiguous in rating: a better tier never holds a lower rating
    r, t = real_table.ratings, pd.Series(real_table.tiers)[real_table.ratings.index]
    assert (np.diff(t.to_numpy()) >= 0).all() and r.is_monotonic_decreasing


def test_tiers_command(shared_data, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("RAYROUTE_DATA", str(shared_data))
    out_json = tmp_path / "tiers.json"
    assert cli_main(["tiers", "--n-tiers", "10", "--json", str(out_json)]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines()[1:] if ln[:4].strip().isdigit()]
    tier = {r[3]: int(r[0]) for r in rows}
    assert set(tier.values()) == set(range(10))
    assert tier[STRONG_DEFAULT] < tier[WEAK_DEFAULT]
    assert json.loads(out_json.read_text())["tiers"] == tier
