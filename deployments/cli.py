"""``rayroute``: the library's subcommands (``routers.cli``) plus the serving ones."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from routers.cli import main as _routers_main

#: serving subcommands: name -> module with add_cli(subparsers)
SERVING_SUBCOMMANDS: dict[str, str] = {
    "bench-routers": "bench.router_speed",
    "bench-ceiling": "bench.ceiling",
    "loadtest": "bench.loadtest",
    "bench-overhead": "bench.overhead",
    "k8s": "ops.k8s",
    "serve": "deployments.app",
    "build-weak-model": "deployments.weak_model_builder",
}


def main(argv: Sequence[str] | None = None) -> int:
    return _routers_main(argv, extra=SERVING_SUBCOMMANDS)


if __name__ == "__main__":
    sys.exit(main())
