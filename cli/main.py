"""The parser of ``rayroute`` (also ``python -m cli``) and its entry point."""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence

from routers.errors import RoutersError

#: modules with add_cli(subparsers), in --help order
COMMAND_MODULES: tuple[str, ...] = (
    "cli.route",
    "cli.train",
    "cli.data",
    "cli.evaluate",
    "cli.calibrate",
    "cli.bench",
    "cli.serve",
    "cli.ops",
    "cli.learn",
    "cli.nway",
)


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayroute",
        description="Learned LLM routing (RouteLLM) on Ray Serve: data, tiers, training, "
        "evaluation, calibration, serving, benchmarks and deployment tooling.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(module_name).add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None, modules: Sequence[str] | None = None) -> int:
    parser = build_parser(modules)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = "rayroute " + " ".join(shlex.quote(a) for a in argv)  # what reports record
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RoutersError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
