"""Boot the default app (serve_config.yaml's ``args``) on a local Ray cluster for an integration module.

Only what a test cannot have is overridden: the weak model is the tiny random Llama built in a temp
dir (as `serve run` builds it), the strong model is a real OpenAI-compatible server on 127.0.0.1
(``tests/integration/openai_server.py``), timeouts are short, CPUs small. Routers, calibration,
policies and everything else come from serve_config.yaml. Ray runs with token auth
(RAY_AUTH_MODE=token, random RAY_AUTH_TOKEN) and is stopped in ``finally`` even when start-up fails.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.local_ray import ray_env, shutdown
from routers.paths import REPO_ROOT
from bench.loopback import free_port

APP_NAME = "rayroute"
STRONG_NAME = "fake-strong"
WEAK_NAME = "weak-tiny-llama"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def default_app_args(model_dir: str | Path, strong_url: str, strong_key_env: str, ingress_keys_env: str,
                     **overrides: Any) -> dict[str, Any]:
    """serve_config.yaml's app args with the test-only overrides (and ``overrides`` merged on top)."""
    cfg = yaml.safe_load((REPO_ROOT / "serve_config.yaml").read_text())
    args = next(a for a in cfg["applications"] if a["name"] == APP_NAME)["args"]
    test = {
        "weak_model": {"model": str(model_dir), "served_model_name": WEAK_NAME,
                       "max_tokens_default": 16},
        "strong_model": {"base_url": strong_url, "model": STRONG_NAME, "api_key_env": strong_key_env,
                         "request_timeout_s": 1.5, "max_retries": 1, "backoff_initial_s": 0.05,
                         "backoff_max_s": 1.0},
        "ingress": {"api_keys_env": ingress_keys_env, "backend_timeout_s": 20},
        "deployments": {
            "ingress": {"ray_actor_options": {"num_cpus": 0.1}},
            "router": {"ray_actor_options": {"num_cpus": 0.05}},
            "weak_model": {"ray_actor_options": {"num_cpus": 1}},
            "strong_model": {"ray_actor_options": {"num_cpus": 0.05}},
        },
    }
    return _merge(_merge(args, test), overrides)


@contextlib.contextmanager
def fake_servers(names: list[str], cls: Any = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """One started fake OpenAI server (``bench.fake_openai.FakeOpenAI`` or ``cls``) per name; all
    stopped on exit."""
    from bench.fake_openai import FakeOpenAI

    servers: dict[str, Any] = {}
    try:
        for name in names:
            servers[name] = (cls or FakeOpenAI)(name, **kwargs).start()
        yield servers
    finally:
        for srv in servers.values():
            srv.stop()


def fake_remote(backends: dict[str, Any], name: str, key_env: str = "RR_NWAY_KEY") -> dict[str, Any]:
    """A ``remote:`` backend on the fake OpenAI server ``backends[name]``: no retries and no
    cooldown, so a failure reaches the fallback path at once, every time."""
    return {"base_url": backends[name].base_url, "model": name, "api_key_env": key_env,
            "request_timeout_s": 5, "max_retries": 0, "cooldown_failures": 0}


def nway_app_args(backends: dict[str, Any], models: list[dict[str, Any]], checkpoint: str | Path,
                  backend_timeout_s: float = 20, key_env: str = "RR_NWAY_KEY", **nway: Any) -> dict[str, Any]:
    """App args for the N-way modules: the two-model pair on the fakes ``fake-strong`` / ``fake-weak``
    of ``backends`` with a random router in the ingress, the N-way ``models`` and one kNN router
    ``knn`` on ``checkpoint`` (``nway`` adds options such as ``default_cost_weight``)."""
    small = {"ray_actor_options": {"num_cpus": 0.05}}
    return {
        "routers": [{"alias": "random", "placement": "ingress", "kwargs": {"seed": 0}}],
        "weak_model": {"api_base_url": backends["fake-weak"].base_url, "model": "fake-weak",
                       "served_model_name": "fake-weak", "api_key_env": key_env},
        "strong_model": {**fake_remote(backends, "fake-strong", key_env), "fallback": "weak"},
        "ingress": {"api_keys_env": "RR_TEST_KEYS", "backend_timeout_s": backend_timeout_s},
        "nway": {"models": models, "routers": [{"alias": "knn", "source": str(checkpoint)}], **nway},
        "deployments": {"ingress": {"ray_actor_options": {"num_cpus": 0.1}}, "weak_model": small,
                        "strong_model": small},  # strong_model's options apply to each remote N-way model
    }


@contextlib.contextmanager
def booted_app(args: dict[str, Any], env: dict[str, str], start_timeout_s: float = 420) -> Iterator[str]:
    """Start Ray + Serve, deploy ``build_app(args)``, yield the base URL; always shut everything down."""
    import pytest
    import ray
    from ray import serve

    from deployments.app import build_app

    port = free_port()
    with ray_env({"VLLM_CPU_KVCACHE_SPACE": "1", **env}):
        try:
            ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, namespace="rayroute-test")
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            errors: list[BaseException] = []

            def deploy():
                try:
                    serve.run(build_app(args), name=APP_NAME, route_prefix="/")
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

            t0 = time.monotonic()
            th = threading.Thread(target=deploy, daemon=True)
            th.start()
            th.join(start_timeout_s)
            if th.is_alive():
                pytest.fail(f"the app did not start within {start_timeout_s}s")
            if errors:
                raise errors[0]
            print(f"\napp boot: {time.monotonic() - t0:.1f}s", flush=True)
            yield f"http://127.0.0.1:{port}"
        finally:
            shutdown()


# --- replicas ------------------------------------------------------------------------------------


def replica_actors(deployment: str) -> list[tuple[str, Any]]:
    """(actor name, handle) of the live replicas of ``deployment`` in the app (Serve's named actors)."""
    import ray

    out = []
    for a in ray.util.list_named_actors(all_namespaces=True):
        name = a["name"] if isinstance(a, dict) else a
        ns = a.get("namespace") if isinstance(a, dict) else None
        if f"#{deployment}#" in name and name.startswith("SERVE_REPLICA"):
            try:
                out.append((name, ray.get_actor(name, namespace=ns)))
            except ValueError:
                pass  # died between listing and lookup
    return out


def replica_pid(handle: Any) -> int:
    import ray

    return ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=30)


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (vLLM's engine core runs in a child), MiB."""
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 2**20


def replica_memory() -> dict[str, float]:
    """Replica actor name (shortened) -> RSS MiB, for every deployment of the app."""
    out = {}
    for dep in ("Ingress", "WeakModel", "StrongModel", "Router_random", "Router_sw_ranking", "Router_mf"):
        for name, h in replica_actors(dep):
            out[name.split("#", 1)[1]] = round(rss_mib(replica_pid(h)), 1)
    return out


def wait_new_replica(deployment: str, old_names: set[str], timeout_s: float) -> float:
    """Seconds until ``deployment`` has a replica not in ``old_names`` and Serve reports it HEALTHY
    with every replica RUNNING (the replacement for a killed one)."""
    from ray import serve

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        names = {n for n, _ in replica_actors(deployment)}
        st = serve.status().applications[APP_NAME].deployments[deployment]
        counts = dict(st.replica_states or {})
        if (names - old_names) and str(st.status).endswith("HEALTHY") and counts and set(counts) == {"RUNNING"}:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise TimeoutError(f"{deployment} not replaced after {timeout_s}s: {serve.status().applications[APP_NAME]}")
