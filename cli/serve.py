"""``rayroute serve``: run serve_config.yaml in the foreground (``serve run``)."""

from __future__ import annotations

import argparse
import os
import shutil

from routers.paths import REPO_ROOT


def _cmd(ns: argparse.Namespace) -> int:
    exe = shutil.which("serve")
    if exe is None:
        raise SystemExit("the `serve` command (ray[serve]) is not on PATH; run `bash scripts/setup.sh`")
    # Serve restarts an HTTP proxy not ready within 5 s; on a small busy node start-up then fails.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    os.execv(exe, [exe, "run", ns.config])
    return 0  # not reached


def add_cli(sub) -> None:
    p = sub.add_parser("serve", help="serve the router app (serve run serve_config.yaml, foreground)")
    p.add_argument("--config", default=str(REPO_ROOT / "serve_config.yaml"), help="Serve config file")
    p.set_defaults(func=_cmd)
