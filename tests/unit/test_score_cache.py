"""The serving score cache: a repeated prompt gets the score it got before without re-scoring,
distinct prompts are scored once per call, the least recently used entry goes first, a failed
scoring call stores nothing, and only deterministic routers are cached by the replica."""

import logging

import numpy as np
import pytest

from deployments.config import RouterArgs
from deployments.router_replica import RouterReplica
from deployments.score_cache import ScoreCache
from routers.registry import load_router


class Counting:
    """A real router (prompt length) that records what it was asked to score."""

    def __init__(self):
        self.router = load_router("length")
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return self.router.score(texts)


def test_hits_return_the_routers_own_scores_and_skip_scoring():
    scorer, cache = Counting(), ScoreCache(16)
    texts = ["short", "a somewhat longer prompt", "short"]
    first = cache.score(texts, scorer)
    assert scorer.calls == [["short", "a somewhat longer prompt"]]  # a repeat inside a call: scored once
    np.testing.assert_array_equal([s for s, _ in first], scorer.router.score(texts))
    assert [c for _, c in first] == [False, False, False]
    second = cache.score(["a somewhat longer prompt", "new one", "short"], scorer)
    assert scorer.calls[-1] == ["new one"]
    assert [c for _, c in second] == [True, False, True]
    assert second[0][0] == first[1][0] and second[2][0] == first[0][0]
    assert cache.stats() == {"entries": 3, "max_entries": 16, "hits": 2, "misses": 4}


def test_least_recently_used_entry_is_evicted():
    scorer, cache = Counting(), ScoreCache(2)
    cache.score(["a", "bb"], scorer)
    cache.score(["a"], scorer)  # "a" is now the most recent
    cache.score(["ccc"], scorer)  # evicts "bb"
    assert cache.stats()["entries"] == 2
    out = cache.score(["a", "bb"], scorer)
    assert [c for _, c in out] == [True, False] and scorer.calls[-1] == ["bb"]


def test_a_failed_scoring_call_stores_nothing():
    cache = ScoreCache(4)

    def broken(texts):
        raise RuntimeError("embedder died")

    with pytest.raises(RuntimeError, match="embedder died"):
        cache.score(["x"], broken)
    assert cache.stats()["entries"] == 0
    out = cache.score(["x"], Counting())
    assert out[0][1] is False


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_bad_size_names_the_value(bad):
    with pytest.raises(ValueError, match=f"max_entries must be a positive integer, got {bad!r}"):
        ScoreCache(bad)


def test_config_bounds():
    assert RouterArgs(alias="mf").score_cache_entries == 0  # off unless asked for
    with pytest.raises(ValueError, match="score_cache_entries"):
        RouterArgs(alias="mf", score_cache_entries=-1)


def _replica(alias, source, kwargs, entries):
    cfg = RouterArgs(alias=alias, source=source, kwargs=kwargs, score_cache_entries=entries).user_config()
    return RouterReplica(alias, cfg)


def test_replica_caches_deterministic_routers_and_starts_afresh_on_reload():
    replica = _replica("hashed", "random", {"seed": 0, "per_prompt": True}, 8)
    cache = replica._cache
    assert cache is not None and replica.describe()["score_cache"]["max_entries"] == 8
    cache.score(["hello"], replica._router.score)
    cfg = dict(replica._config, reload_token="v2")
    replica.reconfigure(cfg)  # a new router must not see the old one's scores
    assert replica._cache is not cache and replica._cache.stats()["entries"] == 0
    replica.reconfigure(dict(cfg, score_cache_entries=0))
    assert replica._cache is None and replica.describe()["score_cache"] is None


def test_replica_ignores_the_cache_for_a_per_call_random_router(caplog):
    with caplog.at_level(logging.WARNING, logger="ray.serve"):
        replica = _replica("coin", "random", {"seed": 0}, 8)
    assert replica._cache is None
    assert "score_cache_entries=8 ignored" in caplog.text and "per_prompt" in caplog.text


def test_get_counts_hits_only_and_refreshes_recency():
    scorer, cache = Counting(), ScoreCache(2)
    assert cache.get("a") is None and cache.stats()["hits"] == 0 and cache.stats()["misses"] == 0
    cache.score(["a", "bb"], scorer)
    assert cache.get("a") == scorer.router.score(["a"])[0]
    cache.score(["ccc"], scorer)  # "a" was used last via get: "bb" goes
    assert cache.get("bb") is None and cache.get("a") is not None
    assert cache.stats() == {"entries": 2, "max_entries": 2, "hits": 2, "misses": 3}


def test_replica_answers_a_hit_without_the_batch_queue():
    """A hit is answered in route() itself: outside a Serve replica the batch queue cannot even
    start, so a hit's answer proves it never waited there behind misses."""
    import asyncio

    replica = _replica("hashed", "random", {"seed": 0, "per_prompt": True}, 8)
    [(p, _)] = replica._cache.score(["hello"], replica._router.score)
    out = asyncio.run(replica.route([{"role": "user", "content": "hello"}], 0.3))
    assert out.cached is True and out.p_strong == p and out.strong == (p >= 0.3)
    assert replica._cache.stats()["hits"] == 1
