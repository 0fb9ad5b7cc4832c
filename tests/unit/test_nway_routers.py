"""The head and MF N-way quality routers: fit, predict, checkpoints, errors (hash embedder)."""

import numpy as np
import pytest

from routers.errors import CheckpointError, ConfigError, UnknownModelError
from routers.nway.head import HeadQualityRouter
from routers.nway.registry import QUALITY_ROUTER_CLASSES, load_quality_router
from routers.training.nway_mf import fit_mf_quality
from tests.fakes import HashEmbedder, make_prompt

MODELS = ["cheap", "mid", "dear"]


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    prompts = [make_prompt(rng, bool(h)) for h in hard]
    y = np.c_[(~hard).astype(float), (rng.random(n) < 0.5).astype(float), np.ones(n)]
    y[:10, 1] = np.nan  # 'mid' not run on some prompts
    return prompts, y, hard


def _fit(kind, prompts, y, emb):
    if kind == "head":
        return HeadQualityRouter.fit(prompts, y, MODELS, emb)
    return fit_mf_quality(emb.embed(prompts), y, MODELS, emb.name, epochs=20, batch_size=32, val_fraction=0.0)


@pytest.mark.parametrize("kind", ["head", "mf"])
def test_router_learns_which_model_is_right_and_round_trips(kind, tmp_path):
    prompts, y, hard = _data()
    emb = HashEmbedder(64)
    router = _fit(kind, prompts, y, emb)
    q = router.predict(prompts)
    assert q.shape == (len(prompts), 3) and np.isfinite(q).all() and (q >= 0).all() and (q <= 1).all()
    # the cheap model is predicted better on the easy prompts than on the hard ones
    assert q[~hard, 0].mean() > q[hard, 0].mean() + 0.2
    np.testing.assert_allclose(router.predict(prompts[:1]), q[:1], rtol=0, atol=1e-12)
    router.save(tmp_path / kind)
    loaded = load_quality_router(tmp_path / kind, embedder=emb)
    assert type(loaded) is type(router) and loaded.models == MODELS
    np.testing.assert_allclose(loaded.predict(prompts), q, atol=1e-5)
    with pytest.raises(UnknownModelError, match="known models: cheap, mid, dear"):
        loaded.predict_for(prompts, ["gpt-5"])


def test_head_chooses_its_penalty_inside_the_training_rows():
    prompts, y, _ = _data()
    router = HeadQualityRouter.fit(prompts, y, MODELS, HashEmbedder(64))
    assert str(router.alpha) in router.info["alpha_cv_brier"]
    with pytest.raises(ConfigError, match="alpha"):
        HeadQualityRouter.fit(prompts, y, MODELS, HashEmbedder(64), alpha=-1)


def test_bad_shapes_and_options_are_named_errors(tmp_path):
    with pytest.raises(ConfigError, match="inconsistent head shapes"):
        HeadQualityRouter(np.zeros((2, 70)), np.zeros(2), np.zeros((2, 2)), MODELS)
    with pytest.raises(ConfigError, match="unknown N-way mf option"):
        fit_mf_quality(np.zeros((4, 8)), np.zeros((4, 3)), MODELS, "hash-8", depth=3)
    with pytest.raises(CheckpointError):
        load_quality_router(tmp_path / "nothing")
    assert {"knn", "head", "mf"} <= set(QUALITY_ROUTER_CLASSES)


@pytest.mark.parametrize("kind", ["knn", "head", "mf"])
def test_train_nway_command_writes_a_loadable_checkpoint(kind, tmp_path, monkeypatch):
    import routers.data.nway as nway_data
    from cli.main import main
    from routers.data.nway import Family

    prompts, y, _ = _data(n=120)
    y = np.nan_to_num(y, nan=0.0)
    fam = Family("synthetic", prompts, y, np.broadcast_to([1e-4, 1e-3, 1e-2], y.shape).copy(), MODELS, "USD per query")
    monkeypatch.setattr(nway_data, "load_families", lambda sources: [fam])
    out = tmp_path / kind
    assert main(["train-nway", kind, "--embedder", "hash-64", "--out", str(out)]) == 0
    router = load_quality_router(out)
    assert router.models == MODELS and router.info["sources"] == ["routerbench"]
    assert router.info["mean_cost_usd_per_query"]["dear"] == pytest.approx(1e-2)
    assert router.predict(prompts[:3]).shape == (3, 3)
    assert sum(p.stat().st_size for p in out.iterdir()) < 3e6
