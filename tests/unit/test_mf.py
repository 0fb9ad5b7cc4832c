"""Matrix-factorization router: learns a known relation, reduced scoring = Eq. 11-12, checkpoints."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from routers.errors import CheckpointError, ConfigError, EmbeddingError, UnknownModelError
from routers.evaluation.metrics import apgr
from routers.models.mf import MatrixFactorizationRouter
from routers.models.random import RandomRouter
from routers.registry import load_router
from tests.fakes import STRONG_MODELS, WEAK_MODELS, HashEmbedder, synthetic_benchmark, synthetic_preferences

GROUPS = {"strong": STRONG_MODELS, "weak": WEAK_MODELS}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from routers.training.mf import train_mf

    out = tmp_path_factory.mktemp("mf")
    emb = HashEmbedder(64)
    # A larger lr than the paper's: 1,200 pairs give only ~200 steps in 10 epochs.
    result = train_mf(synthetic_preferences(400, seed=0), out_dir=out, embedder=emb, epochs=10, lr=1e-2,
                      batch_size=32, dim=16, groups=GROUPS, show_progress=False)
    return result, emb


def test_training_recovers_signal_on_held_out_benchmark(trained):
    result, emb = trained
    router = load_router(result.checkpoint, embedder=emb)
    prompts, strong, weak = synthetic_benchmark(300, seed=1)
    learned = apgr(router.score(prompts), strong, weak)
    baseline = np.mean([apgr(RandomRouter(seed=k).score(prompts), strong, weak) for k in range(20)])
    assert learned > 0.6 and learned > baseline + 0.1, (learned, baseline)
    assert {"val_log_loss", "val_accuracy", "best_epoch", "train_loss"} <= set(result.metrics)
    assert 1 <= result.metrics["best_epoch"] <= 10


def test_reduced_vector_equals_full_model(trained):
    result, emb = trained
    router = load_router(result.checkpoint, embedder=emb)
    e = emb.embed(["Prove the theorem about the integral", "hello, what is your favorite color"])
    full = router.win_probability(e, "strong", "weak")
    np.testing.assert_allclose(router.score_embeddings(e), full, rtol=1e-10, atol=1e-12)
    # a single model pair uses that model's vector, different from the group mean
    pair = router.win_probability(e, "big-model-1", "small-model-2")
    router.set_pair("big-model-1", "small-model-2")
    np.testing.assert_allclose(router.score_embeddings(e), pair, rtol=1e-10, atol=1e-12)


def test_save_load_identical_and_batched_equals_single(trained, tmp_path):
    result, emb = trained
    router = load_router(result.checkpoint, embedder=emb)
    prompts, _, _ = synthetic_benchmark(40, seed=3)
    batch = router.score(prompts)
    single = np.array([router.score([p])[0] for p in prompts])
    np.testing.assert_array_equal(batch, single)
    again = MatrixFactorizationRouter.load(router.save(tmp_path / "copy"), embedder=emb)
    np.testing.assert_array_equal(again.score(prompts), batch)
    assert batch.dtype == np.float64 and np.all((batch >= 0) & (batch <= 1))
    assert router.score([]).shape == (0,)


def test_checkpoint_is_small_and_names_its_embedder(trained):
    result, _ = trained
    cfg = json.loads((result.checkpoint / "config.json").read_text())
    assert cfg["router"] == "mf" and cfg["embedder"] == "hash-64"
    assert sorted(cfg["models"]) == sorted(STRONG_MODELS + WEAK_MODELS)  # vocabulary from the data
    assert (result.checkpoint / "model.safetensors").stat().st_size < 100_000


def test_unknown_pair_lists_known_names(trained):
    result, emb = trained
    with pytest.raises(UnknownModelError) as exc:
        load_router(result.checkpoint, embedder=emb, strong="gpt-9")
    msg = str(exc.value)
    assert "gpt-9" in msg and "big-model-1" in msg and "strong" in msg


def test_pair_override_at_load(trained):
    result, emb = trained
    router = load_router(result.checkpoint, embedder=emb, strong="big-model-2", weak="small-model-1")
    assert (router.strong, router.weak) == ("big-model-2", "small-model-1")


def test_missing_or_malformed_checkpoint(trained, tmp_path):
    result, emb = trained
    with pytest.raises(CheckpointError, match="does not exist"):
        MatrixFactorizationRouter.load(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(result.checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        MatrixFactorizationRouter.load(broken, embedder=emb)
    (broken / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        MatrixFactorizationRouter.load(broken, embedder=emb)
    shutil.copy(result.checkpoint / "model.safetensors", broken / "model.safetensors")
    cfg = json.loads((broken / "config.json").read_text())
    cfg["models"] = cfg["models"][:-1]  # shapes no longer match the weights
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="inconsistent"):
        MatrixFactorizationRouter.load(broken, embedder=emb)
    del cfg["models"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="models"):
        MatrixFactorizationRouter.load(broken, embedder=emb)


def test_wrong_embedding_dimension_is_a_clear_error(trained):
    result, _ = trained
    router = load_router(result.checkpoint, embedder=HashEmbedder(32))
    with pytest.raises(EmbeddingError, match="64-dim"):
        router.score(["a prompt"])
    with pytest.raises(ConfigError, match="shape"):
        router.score_embeddings(np.zeros((2, 32), dtype=np.float32))


def test_trainer_rejects_unknown_pair_before_training(tmp_path):
    from routers.training.mf import train_mf

    with pytest.raises(UnknownModelError, match="small-model-1"):
        train_mf(synthetic_preferences(20), out_dir=tmp_path, embedder=HashEmbedder(16), strong="nobody",
                 groups=GROUPS, show_progress=False)
    assert not (tmp_path / "config.json").exists()
