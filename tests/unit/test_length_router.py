"""Length baseline: monotone in prompt length, needs no checkpoint, round-trips its one parameter."""

from __future__ import annotations

import numpy as np
import pytest

from routers.errors import CheckpointError, ConfigError
from routers.models.length import LengthRouter
from routers.registry import load_router


def test_monotone_and_half_at_median():
    r = LengthRouter(median_chars=100)
    p = r.score(["", "x" * 10, "x" * 100, "x" * 1000])
    assert p[0] == 0.0 and p[2] == pytest.approx(0.5) and np.all(np.diff(p) > 0) and p[-1] < 1.0


def test_registry_builds_it_without_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYROUTE_CHECKPOINTS", str(tmp_path))
    r = load_router("length", median_chars=50)
    assert isinstance(r, LengthRouter) and r.median_chars == 50


def test_save_load_and_batched_equals_single(tmp_path):
    r = LengthRouter.fit(["a" * 20, "b" * 40, "c" * 300])
    assert r.median_chars == 40
    again = load_router(r.save(tmp_path / "len"))
    prompts = ["short", "a much longer prompt " * 10]
    np.testing.assert_array_equal(again.score(prompts), r.score(prompts))
    np.testing.assert_array_equal(r.score(prompts), [r.score([p])[0] for p in prompts])


@pytest.mark.parametrize("bad", [0, -5, float("nan"), "abc"])
def test_bad_scale_is_named(bad):
    with pytest.raises(ConfigError, match="median_chars"):
        LengthRouter(bad)


def test_wrong_checkpoint_kind(tmp_path):
    from routers.models.random import RandomRouter

    RandomRouter().save(tmp_path / "r")
    with pytest.raises(CheckpointError, match="random"):
        LengthRouter.load(tmp_path / "r")
