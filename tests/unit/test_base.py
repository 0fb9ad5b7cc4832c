import math

import numpy as np
import pytest

from routers import ConfigError, strong_mask
from routers.base import validate_threshold
from routers.models.random import RandomRouter
from routers.registry import load_router, router_class, read_config
from routers.errors import CheckpointError, UnknownRouterError


def test_threshold_rule_is_ge():
    p = np.array([0.1, 0.5, 0.50001, 0.9])
    assert strong_mask(p, 0.5).tolist() == [False, True, True, True]
    assert strong_mask(p, 0.0).all()
    assert not strong_mask(p, 1.0).any()


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, "abc", None, math.inf])
def test_threshold_out_of_range_names_value(bad):
    with pytest.raises(ConfigError) as exc:
        validate_threshold(bad)
    assert repr(bad) in str(exc.value) or str(bad) in str(exc.value)


def test_random_router_seeded_and_uniform():
    a = RandomRouter(seed=1).score(["x"] * 2000)
    b = RandomRouter(seed=1).score(["x"] * 2000)
    assert np.array_equal(a, b)
    assert 0.45 < a.mean() < 0.55 and a.min() >= 0 and a.max() < 1
    # threshold α sends about 1-α of traffic to strong
    assert abs(strong_mask(a, 0.8).mean() - 0.2) < 0.03


def test_random_router_per_prompt_batch_equals_single(tmp_path):
    r = RandomRouter(seed=3, per_prompt=True)
    prompts = ["alpha", "beta", "gamma"]
    batch = r.score(prompts)
    single = np.array([r.score([p])[0] for p in prompts])
    assert np.array_equal(batch, single)
    r.save(tmp_path / "rnd")
    r2 = load_router(tmp_path / "rnd")
    assert np.array_equal(r2.score(prompts), batch)


def test_score_rejects_single_string():
    with pytest.raises(ConfigError):
        RandomRouter().score("just a string")


def test_registry_errors(tmp_path):
    with pytest.raises(UnknownRouterError) as exc:
        router_class("nope")
    assert "mf" in str(exc.value) and "nope" in str(exc.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_config(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_router(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_router(bad)
    (bad / "config.json").write_text('{"router": "quantum"}')
    with pytest.raises(CheckpointError, match="quantum"):
        load_router(bad)


def test_named_checkpoints_in_the_checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYROUTE_CHECKPOINTS", str(tmp_path))
    RandomRouter(seed=7, per_prompt=True).save(tmp_path / "my_random")
    r = load_router("my_random")  # not a registry name: the directory's config.json says which router
    assert isinstance(r, RandomRouter) and r.seed == 7
    with pytest.raises(UnknownRouterError, match="'elsewhere'"):
        load_router("elsewhere")  # neither a router nor a checkpoint there
