"""SW ranking: fast per-query BT on aggregated win tables == RouteLLM's per-battle regression."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from routers.errors import CheckpointError, UnknownModelError
from routers.evaluation.metrics import apgr
from routers.models.random import RandomRouter
from routers.registry import load_router
from routers.models.sw_ranking import SWRankingRouter, bradley_terry, max_similarity, reference_probability
from tests.fakes import STRONG_MODELS, WEAK_MODELS, HashEmbedder, synthetic_benchmark, synthetic_preferences

CLASSES = {**{m: "strong" for m in STRONG_MODELS}, **{m: "weak" for m in WEAK_MODELS}}
TIERS = {"big-model-1": "t0", "big-model-2": "t1", "small-model-1": "t2", "small-model-2": "t2"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from routers.training.sw_ranking import build_sw

    emb = HashEmbedder(64)
    df = synthetic_preferences(400, seed=0)
    two = build_sw(df, out_dir=tmp_path_factory.mktemp("sw2"), embedder=emb, model_groups=CLASSES,
                   show_progress=False)
    three = build_sw(df, out_dir=tmp_path_factory.mktemp("sw3"), embedder=emb, model_groups=TIERS,
                     strong="t0", weak="t2", show_progress=False)
    return two, three, emb


def test_recovers_signal_on_held_out_benchmark(built):
    two, _, emb = built
    router = load_router(two.checkpoint, embedder=emb)
    prompts, strong, weak = synthetic_benchmark(300, seed=1)
    learned = apgr(router.score(prompts), strong, weak)
    baseline = np.mean([apgr(RandomRouter(seed=k).score(prompts), strong, weak) for k in range(20)])
    assert learned > 0.6 and learned > baseline + 0.08, (learned, baseline)
    assert two.metrics["n_battles"] == 400 and "val_log_loss" in two.metrics


@pytest.mark.parametrize("which", [0, 1], ids=["2 classes (closed form)", "3 tiers (Newton)"])
def test_fast_equals_per_battle_reference(built, which):
    result = built[which]
    emb = built[2]
    router = load_router(result.checkpoint, embedder=emb)
    e = emb.embed(synthetic_benchmark(25, seed=5)[0] + ["prove the integral lemma", "hello weather joke"])
    fast = router.score_embeddings(e)
    slow = router.reference_score(e)
    np.testing.assert_allclose(fast, slow, atol=1e-3)
    assert np.ptp(fast) > 0.05  # the check is not vacuous: scores vary across prompts


def test_reference_matches_sklearn_logistic_regression(built):
    """Our reference solver is RouteLLM's sklearn LogisticRegression (ties as one win each way)."""
    from sklearn import linear_model as sk
    router = load_router(built[1].checkpoint, embedder=built[2])
    b = {k: v.astype(np.float64) for k, v in router.battles.items()}
    q = built[2].embed(["prove the theorem about the matrix eigenvalue"])[0]
    ours = reference_probability(q, router.train_emb, router.max_sim, b["battle_prompt"].astype(int),
                                 b["battle_a"].astype(int), b["battle_b"].astype(int), b["battle_y"],
                                 b["battle_w"], 0, 2, 3, ridge=0.0)
    sims = router.train_emb @ q / np.maximum(router.max_sim, 0.05)
    omega = (10.0 ** (1 + sims))[b["battle_prompt"].astype(int)]
    n = len(omega)
    x = np.zeros((2 * n, 3))
    for half in range(2):
        x[half * n + np.arange(n), b["battle_a"].astype(int)] = 1.0
        x[half * n + np.arange(n), b["battle_b"].astype(int)] = -1.0
    y = np.concatenate([np.ones(n), np.zeros(n)])  # row "a wins" and row "b wins"
    w = np.concatenate([omega * (1 - b["battle_y"]), omega * b["battle_y"]])
    lr = sk.LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-10, max_iter=10_000).fit(x, y, sample_weight=w)
    xi = lr.coef_[0]
    assert ours == pytest.approx(1 / (1 + np.exp(-(xi[0] - xi[2]))), abs=1e-4)


def test_bradley_terry_closed_form_for_two_groups():
    wins = np.array([[[0.0, 3.0], [1.0, 0.0]]])
    xi = bradley_terry(wins)
    assert 1 / (1 + np.exp(-(xi[0, 0] - xi[0, 1]))) == pytest.approx(0.75, abs=1e-5)


def test_max_similarity_excludes_self():
    e = np.eye(3, dtype=np.float32)
    e[2] = e[1]  # rows 1 and 2 identical, row 0 orthogonal to both
    np.testing.assert_allclose(max_similarity(e), [0.0, 1.0, 1.0])


def test_save_load_identical_and_batched_equals_single(built, tmp_path):
    result, _, emb = built
    router = load_router(result.checkpoint, embedder=emb)
    prompts = synthetic_benchmark(30, seed=7)[0]
    batch = router.score(prompts)
    single = np.array([router.score([p])[0] for p in prompts])
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-12)  # BLAS blocking: last-bit noise only
    again = SWRankingRouter.load(router.save(tmp_path / "copy"), embedder=emb)
    np.testing.assert_array_equal(again.score(prompts), batch)


def test_unknown_group_lists_known(built):
    with pytest.raises(UnknownModelError) as exc:
        load_router(built[1].checkpoint, embedder=built[2], strong="gpt-9")
    assert "gpt-9" in str(exc.value) and "t0" in str(exc.value) and "t2" in str(exc.value)


def test_missing_or_malformed_checkpoint(built, tmp_path):
    result, _, emb = built
    with pytest.raises(CheckpointError, match="does not exist"):
        SWRankingRouter.load(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(result.checkpoint, broken)
    (broken / "sw_data.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="sw_data.safetensors"):
        SWRankingRouter.load(broken, embedder=emb)
    (broken / "sw_data.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        SWRankingRouter.load(broken, embedder=emb)
    shutil.copy(result.checkpoint / "sw_data.safetensors", broken / "sw_data.safetensors")
    cfg = json.loads((broken / "config.json").read_text())
    cfg["groups"] = ["strong"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="group"):
        SWRankingRouter.load(broken, embedder=emb)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        SWRankingRouter.load(broken, embedder=emb)
