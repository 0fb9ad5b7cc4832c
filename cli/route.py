"""``rayroute route``: score prompts with a router and print the decisions (JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd(args: argparse.Namespace) -> int:
    from routers.registry import route_prompts

    prompts = list(args.prompt)
    if args.file:
        with open(args.file, encoding="utf-8") as fh:
            prompts += [line.rstrip("\n") for line in fh if line.strip()]
    if not prompts:
        print("error: give prompts as arguments or with --file", file=sys.stderr)
        return 2
    for row in route_prompts(args.router, prompts, args.threshold):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("route", help="score prompts with a router and print the routing decision (JSON lines)")
    p.add_argument("prompt", nargs="*", help="prompt text(s)")
    p.add_argument("--router", default="random", help="router name (random, sw_ranking, mf, bert, causal_llm) or checkpoint dir")
    p.add_argument("--threshold", type=float, default=0.5, help="cost threshold α in [0, 1]: strong if P(strong) >= α")
    p.add_argument("--file", help="a text file with one prompt per line")
    p.set_defaults(func=_cmd)
