"""A local Ray cluster in this process, for the commands and tests that boot one (bench-overhead,
bench-budget, demo-learning, the integration tests): its environment, and its teardown."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator


def reset_ray_auth() -> None:
    """Ray reads RAY_AUTH_MODE / RAY_AUTH_TOKEN once per process and caches them; when Ray was
    imported or run earlier, re-read them (Ray's own test helper), else ray.init cannot reach its GCS."""
    try:
        from ray._private.authentication_test_utils import reset_auth_token_state
    except ImportError:  # a Ray without it reads the variables at ray.init
        return
    reset_auth_token_state()


@contextlib.contextmanager
def ray_env(env: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Token auth with a token of this run only (no token file written) and a minute for Serve's
    proxy to start (it restarts one not ready in 5 s, which a busy 2-core node can exceed), plus
    ``env``; the previous environment is restored on exit."""
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", **(env or {})}
    backup = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_ray_auth()
    try:
        yield env
    finally:
        for k, v in backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_ray_auth()


def shutdown() -> None:
    """Serve, then Ray; Serve may already be gone (a failed start), Ray must go regardless."""
    import ray
    from ray import serve

    with contextlib.suppress(Exception):
        serve.shutdown()
    ray.shutdown()
