"""The N-way selection rule (routers.nway.selection) and the kNN quality router."""

import numpy as np
import pytest

from routers.embeddings.hashing import HashingEmbedder
from routers.errors import CheckpointError, ConfigError, UnknownModelError
from routers.nway.knn import KNNQualityRouter
from routers.nway.registry import load_quality_router
from routers.nway.selection import choose, order, rank

MODELS = ["dear", "mid", "cheap"]
QUALITY = [0.9, 0.85, 0.5]
COST = [10.0, 1.0, 0.1]


def names(cands):
    return [c.model for c in cands]


def test_lambda_zero_picks_best_quality_and_large_lambda_the_cheapest():
    assert names(rank(MODELS, QUALITY, COST, 0.0)) == ["dear", "mid", "cheap"]
    assert names(rank(MODELS, QUALITY, COST, 100.0))[0] == "cheap"


def test_lambda_trades_quality_for_relative_price():
    # at λ = 0.1 'dear' scores 0.9 - 0.1 = 0.8 < 'mid' 0.85 - 0.01
    ranked = rank(MODELS, QUALITY, COST, 0.1)
    assert names(ranked) == ["mid", "dear", "cheap"]
    assert ranked[0].relative_cost == pytest.approx(0.1)
    assert ranked[0].score == pytest.approx(0.85 - 0.1 * 0.1)


def test_prices_are_relative_so_scaling_every_price_changes_nothing():
    q = np.random.default_rng(0).random((50, 4))
    c = np.array([3.0, 1.0, 0.2, 0.05])
    for lam in (0.0, 0.05, 0.3, 2.0):
        assert (order(q, c, lam) == order(q, c * 1e-6, lam)).all()


def test_ties_go_to_the_cheaper_model():
    assert names(rank(["a", "b"], [0.5, 0.5], [2.0, 1.0], 0.0)) == ["b", "a"]


def test_within_rule_takes_the_cheapest_near_the_best_then_by_quality():
    assert names(rank(MODELS, QUALITY, COST, 0.1, rule="within")) == ["mid", "dear", "cheap"]
    assert names(rank(MODELS, QUALITY, COST, 0.5, rule="within")) == ["cheap", "mid", "dear"]
    assert names(rank(MODELS, QUALITY, COST, 0.0, rule="within")) == ["dear", "mid", "cheap"]


def test_choose_matches_rank_row_by_row():
    rng = np.random.default_rng(1)
    q, c = rng.random((20, 5)), rng.random(5)
    picked = choose(q, c, 0.2)
    for i in range(20):
        assert rank([str(j) for j in range(5)], q[i], c, 0.2)[0].model == str(picked[i])


@pytest.mark.parametrize("knob", [-0.1, float("nan"), float("inf"), "x"])
def test_bad_knob_is_a_config_error(knob):
    with pytest.raises(ConfigError):
        rank(MODELS, QUALITY, COST, knob)


def test_mismatched_lengths_and_negative_costs_are_config_errors():
    with pytest.raises(ConfigError):
        rank(MODELS, QUALITY[:2], COST, 0.1)
    with pytest.raises(ConfigError):
        rank(MODELS, QUALITY, [1.0, -1.0, 0.0], 0.1)


def _knn(k=2):
    prompts = ["add two numbers", "add three numbers", "write a poem", "write a sonnet"]
    outcomes = np.array([[1, 0, 0], [1, 0, np.nan], [0, 1, 1], [0, 1, 0]], dtype=float)
    emb = HashingEmbedder(64)
    return KNNQualityRouter.fit(prompts, outcomes, MODELS, emb, k=k), prompts


def test_knn_predicts_its_neighbours_mean_outcome_and_skips_missing():
    router, prompts = _knn(k=1)
    q = router.predict(prompts)
    assert q.shape == (4, 3)
    assert q[0].tolist() == [1, 0, 0] and q[2].tolist() == [0, 1, 1]
    assert q[1, 2] == pytest.approx(1 / 3)  # missing outcome: the model's mean over training prompts
    assert (router.predict(prompts[:1]) == q[:1]).all()  # alone or in a batch


def test_knn_unknown_model_lists_the_known_ones():
    router, prompts = _knn()
    with pytest.raises(UnknownModelError, match="known models: dear, mid, cheap"):
        router.predict_for(prompts, ["gpt-5"])
    assert router.predict_for(prompts, ["cheap", "dear"]).shape == (4, 2)


def test_knn_checkpoint_round_trip(tmp_path):
    router, prompts = _knn()
    router.save(tmp_path / "knn")
    loaded = load_quality_router(tmp_path / "knn", embedder=HashingEmbedder(64))
    np.testing.assert_allclose(loaded.predict(prompts), router.predict(prompts), atol=1e-6)
    with pytest.raises(CheckpointError):
        load_quality_router(tmp_path / "missing")


def test_knn_rejects_bad_outcomes():
    with pytest.raises(ConfigError):
        KNNQualityRouter(np.ones((2, 4)), np.array([[2.0], [0.0]]), ["a"])
    with pytest.raises(ConfigError):
        KNNQualityRouter(np.ones((2, 4)), np.zeros((2, 2)), ["a", "a"])
