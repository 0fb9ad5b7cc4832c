"""``rayroute calibrate``: the threshold α for a target strong-call share, and the model string."""

from __future__ import annotations

import argparse
import json


def _cmd(args: argparse.Namespace) -> int:
    from routers.calibration import calibrate, read_prompts

    prompts = read_prompts(args.prompts, args.field) if args.prompts else None
    cal = calibrate(args.router, args.strong_fraction, prompts, mix=args.mix, progress=not args.quiet)
    if args.json:
        print(json.dumps(cal.to_dict()))
    else:
        print(f"threshold α = {cal.threshold}  (strong fraction {cal.realised:.4f} on {cal.n_prompts} prompts; "
              f"target {cal.target})")
        print(cal.model)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("calibrate", help="threshold α for a target strong-call fraction, and the model string")
    p.add_argument("--router", required=True, help="router name (mf, sw_ranking, ...) or checkpoint dir")
    p.add_argument("--strong-fraction", type=float, required=True, help="target share of strong calls in [0, 1]")
    p.add_argument("--prompts", default=None, help="prompt sample (.txt/.jsonl/.csv); default: the training prompts")
    p.add_argument("--field", default="prompt", help="field / column of --prompts (default: prompt)")
    p.add_argument("--mix", default=None, help="training mix file for the default sample")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd)
