"""The router deployment's class, driven directly without a Ray cluster: thresholds, in-place
reload through ``reconfigure``, torch threads. (``route`` goes through ``@serve.batch``, which needs
a replica context: the integration tests drive it.)"""

import pytest
import torch

from deployments.config import RouterArgs
from deployments.errors import CalibrationUnavailableError, ThresholdError
from deployments.router_replica import RouterReplica
from routers.registry import load_router


def _replica(**overrides):
    calls = []

    def loader(source, **kwargs):
        calls.append((source, kwargs))
        return load_router(source, **kwargs)

    cfg = RouterArgs(alias="random", kwargs={"seed": 1}, **overrides).user_config()
    return RouterReplica("random", cfg, loader=loader), calls


def test_threshold_resolution():
    replica, _ = _replica(default_threshold=0.3)
    assert replica.resolve_threshold(None, None) == 0.3 and replica.resolve_threshold(0.7, None) == 0.7
    with pytest.raises(ThresholdError, match="1.5"):
        replica.resolve_threshold(1.5, None)
    with pytest.raises(CalibrationUnavailableError, match="no calibration configured"):
        replica.resolve_threshold(None, 0.3)


def test_reconfigure_reloads_only_when_the_router_changes():
    replica, calls = _replica()
    first = replica._router
    cfg = RouterArgs(alias="random", kwargs={"seed": 1}, default_threshold=0.9).user_config()
    replica.reconfigure(cfg)  # a threshold change: no reload
    assert replica._router is first and len(calls) == 1 and replica.resolve_threshold(None, None) == 0.9
    cfg["reload_token"] = "v2"
    replica.reconfigure(cfg)
    assert replica._router is not first and len(calls) == 2
    cfg["kwargs"] = {"seed": 2}
    replica.reconfigure(cfg)
    assert calls[-1] == ("random", {"seed": 2})


def test_torch_threads_are_set_in_the_replica():
    before = torch.get_num_threads()
    try:
        _replica(torch_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="torch_threads"):
        RouterArgs(alias="random", torch_threads=0)


def test_in_process_router_ships_light_and_loads_on_start():
    import pickle

    from deployments.router_replica import InProcessRouter

    cfg = RouterArgs(alias="random", kwargs={"seed": 1}, placement="ingress").user_config()
    local = InProcessRouter("random", cfg)
    assert local._replica is None  # building it loads nothing (it travels in the ingress's init args)
    local.start()
    copy = pickle.loads(pickle.dumps(local))  # a loaded router never travels
    assert copy._replica is None and copy.alias == "random" and copy.config == cfg
    assert local.start()._replica._router is not None and local.start() is local


def test_placement_in_the_ingress_has_no_deployment_of_its_own():
    with pytest.raises(ValueError, match="placed in the ingress.*remove `deployment`"):
        RouterArgs(alias="mf_static", placement="ingress", deployment={"num_replicas": 2})
    with pytest.raises(ValueError, match="placement"):
        RouterArgs(alias="mf_static", placement="sidecar")
    with pytest.raises(ValueError, match="scores each request inline: remove batch_wait_timeout_s or use placement"):
        RouterArgs(alias="mf_static", placement="ingress", batch_wait_timeout_s=0)


def test_a_router_in_the_ingress_scores_inline_without_the_batch_queue():
    """No replica context here, so a call into ``@serve.batch`` would fail: the inline path must not
    use it, and must give the same verdict and cache accounting as the batched one."""
    import asyncio

    from deployments.router_replica import InProcessRouter

    cfg = RouterArgs(alias="length", placement="ingress", score_cache_entries=10).user_config()
    local = InProcessRouter("length", cfg).start()

    def refuse(*_a, **_k):
        raise AssertionError("an inline router went through the batch queue")

    local._replica.score_batch = refuse
    text = "a question long enough to score above the default threshold " * 20
    first = asyncio.run(local.route.remote(text, 0.5))
    again = asyncio.run(local.route.remote(text, 0.5))
    want = float(load_router("length").score([text])[0])
    assert first.p_strong == pytest.approx(want) and first.strong == (want >= 0.5) and not first.cached
    assert again.p_strong == first.p_strong and again.cached  # the second is a score-cache hit
