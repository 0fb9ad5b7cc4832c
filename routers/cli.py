"""The library's command line: ``rayroute <subcommand>`` (see ``deployments/cli.py`` for the
serving subcommands added on top). Every subcommand is also a plain Python function.

Each entry of ``SUBCOMMANDS`` names a module with ``add_cli(subparsers)``, which adds one parser
and sets ``func`` to a callable taking the parsed ``argparse.Namespace`` and returning an exit code.
Modules are imported when the parser is built, so they must do no heavy work at import time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from routers.errors import RoutersError

#: subcommand -> module with add_cli(subparsers). Order = order in --help.
SUBCOMMANDS: dict[str, str] = {
    "route": "routers.cli",
    "train": "routers.training.cli",
    "data": "routers.data.preferences",
    "tiers": "routers.data.tiers",
    "eval": "routers.evaluation.cli",
    "calibrate": "routers.calibration",
}


def build_parser(extra: dict[str, str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayroute",
        description="Learned LLM routing (RouteLLM) on Ray Serve: data, tiers, training, "
        "evaluation, calibration and serving.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen = set()
    for module_name in {**SUBCOMMANDS, **(extra or {})}.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        importlib.import_module(module_name).add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None, extra: dict[str, str] | None = None) -> int:
    parser = build_parser(extra)
    args = parser.parse_args(argv)
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


# --- `route`: score prompts with a router and print the decisions --------------------------------


def route(router: str, prompts: Sequence[str], threshold: float, **router_kwargs) -> list[dict]:
    """Score ``prompts`` with ``router`` (name or checkpoint path) and apply ``threshold``."""
    from routers.base import strong_mask
    from routers.registry import load_router

    r = load_router(router, **router_kwargs)
    p = r.score(list(prompts))
    mask = strong_mask(p, threshold)
    return [
        {"prompt": q, "p_strong": float(s), "threshold": float(threshold), "routed_to": "strong" if m else "weak"}
        for q, s, m in zip(prompts, p, mask)
    ]


def _route_cmd(args: argparse.Namespace) -> int:
    prompts = list(args.prompt)
    if args.file:
        with open(args.file, encoding="utf-8") as fh:
            prompts += [line.rstrip("\n") for line in fh if line.strip()]
    if not prompts:
        print("error: give prompts as arguments or with --file", file=sys.stderr)
        return 2
    for row in route(args.router, prompts, args.threshold):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("route", help="score prompts with a router and print the routing decision (JSON lines)")
    p.add_argument("prompt", nargs="*", help="prompt text(s)")
    p.add_argument("--router", default="random", help="router name (random, sw_ranking, mf, bert, causal_llm) or checkpoint dir")
    p.add_argument("--threshold", type=float, default=0.5, help="cost threshold α in [0, 1]: strong if P(strong) >= α")
    p.add_argument("--file", help="a text file with one prompt per line")
    p.set_defaults(func=_route_cmd)


if __name__ == "__main__":
    sys.exit(main())
