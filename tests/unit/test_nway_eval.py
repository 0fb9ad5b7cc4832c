"""RouterBench's AIQ on hand-computable hulls, and the cross-fitted N-way evaluation on a tiny
synthetic family (hash embedder, no data files)."""

import json

import numpy as np
import pytest

from routers.data.nway import Family
from routers.errors import ConfigError
from routers.evaluation.nway import evaluate_family, lambda_points, oracle_point, threshold_points
from routers.evaluation.nway_metrics import aiq, cost_at_quality, hull, hull_quality
from routers.evaluation.nway_report import write_outputs
from tests.fakes import HashEmbedder, make_prompt

POINTS = [(1, 0.5), (3, 0.9), (2, 0.6), (4, 0.8), (2, 0.55)]


def test_hull_drops_points_under_a_chord_and_after_the_best_quality():
    # (2, 0.6) lies under the chord (1, 0.5)-(3, 0.9) (0.7 at cost 2); (4, 0.8) costs more for less
    assert hull(POINTS).tolist() == [[1.0, 0.5], [3.0, 0.9]]
    assert hull_quality(hull(POINTS), [0.5, 2.0, 10.0])[1:].tolist() == pytest.approx([0.7, 0.9])
    assert np.isnan(hull_quality(hull(POINTS), 0.5))


def test_aiq_is_the_mean_height_of_the_hull_over_the_range():
    # [1, 3]: trapezoid (0.5 + 0.9) / 2 * 2 = 1.4; [3, 4]: flat 0.9; mean over 3 = 2.3 / 3
    assert aiq(POINTS, 1, 4) == pytest.approx(2.3 / 3)
    # unreachable below the cheapest point counts 0: [2, 3] = 0.75, [3, 4] = 0.9
    assert aiq([(2, 0.6), (3, 0.9)], 1, 4) == pytest.approx(1.65 / 3)
    with pytest.raises(ConfigError):
        aiq(POINTS, 2, 2)


def test_cost_at_quality_interpolates_on_the_hull():
    assert cost_at_quality(POINTS, 0.8) == pytest.approx(2.5)
    assert cost_at_quality(POINTS, 0.4) == pytest.approx(1.0)
    assert cost_at_quality(POINTS, 0.95) is None


def test_points_of_the_selection_rule_and_of_a_threshold():
    q = np.array([[0.9, 0.1], [0.2, 0.8]])
    costs, y = np.array([[1.0, 10.0], [1.0, 10.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    sums = lambda_points(q, np.array([1.0, 10.0]), costs, y, lambdas=(0.0, 100.0))
    assert sums.tolist() == [[11.0, 2.0], [2.0, 1.0]]
    points = threshold_points(np.array([0.1, 0.9]), 0, 1, costs, y, shares=(0.0, 0.5))
    assert points.tolist() == [[2.0, 1.0], [11.0, 2.0]]
    assert oracle_point(costs, y) == (5.5, 1.0)


def _family(n=120, seed=0):
    """cheap is right on easy prompts only, dear always, mid at random: a learnable family."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    prompts = [make_prompt(rng, bool(h)) for h in hard]
    y = np.c_[(~hard).astype(float), (rng.random(n) < 0.5).astype(float), np.ones(n)]
    costs = np.broadcast_to([1.0, 3.0, 10.0], (n, 3)).copy()
    fam = Family("synthetic", prompts, y, costs, ["cheap", "mid", "dear"], "units")
    fam.emb = HashEmbedder(64).embed(prompts)
    return fam


@pytest.fixture(scope="module")
def synthetic_result():
    return evaluate_family(_family(), routers=("knn", "head"), folds=2, seeds=(0,), log_fn=lambda _: None)


def test_evaluation_on_a_learnable_family_beats_the_zero_router(synthetic_result):
    r = synthetic_result
    assert r["aiq"]["oracle"]["mean"] >= r["aiq"]["zero"]["mean"]
    for name in ("knn", "head"):
        assert r["margins"][name]["zero"]["min"] > 0, name
        assert r["cost_share_at_best_quality"][name][0] < 1.0
    assert r["best_pair"]["models"] == ["cheap", "dear"]
    assert len(r["per_fold"]) == 2 and len(r["curves"]["knn"][0]) == len(r["lambdas"])


def test_outputs_are_written(synthetic_result, tmp_path):
    result = {"command": "rayroute eval-nway --test", "embedder": "hash-64", "routers": ["knn", "head"], "folds": 2,
              "seeds": [0], "lambdas": synthetic_result["lambdas"], "seconds": 1.0, "families": [synthetic_result]}
    paths = write_outputs(result, tmp_path, plots=True)
    assert json.loads(paths["json"].read_text())["command"] == "rayroute eval-nway --test"
    md = paths["markdown"].read_text()
    assert "rayroute eval-nway --test" in md and "| synthetic | head |" in md
    assert paths["synthetic"].stat().st_size > 0


def test_the_training_pair_is_chosen_without_held_out_labels(synthetic_result):
    # on the synthetic family the cheap/dear mix dominates; the pair comes from training folds only
    assert synthetic_result["train_pairs"] == {"cheap → dear": 2}
    assert all(f["aiq"]["train_pair"] in f["pair_aiq"] for f in synthetic_result["per_fold"])
