"""``rayroute eval``: evaluate routers on benchmarks and write Markdown, JSON and PNG plots.

Python: ``run_eval(routers=[...], benchmarks=[...], out="eval-out")`` does the same.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cli import split_list as _split
from routers.data.benchmarks import BENCHMARKS
from routers.errors import ConfigError

log = logging.getLogger(__name__)


def run_eval(routers=None, benchmarks=None, out: str | Path = "eval-out", doc: str | Path | None = None,
             command: str | None = None, **kwargs) -> dict:
    """Evaluate and write ``out``/results.{json,md} and ``out``/<benchmark>.png (and ``doc`` if given).
    ``kwargs`` are ``EvalConfig`` fields (folds, seed, n_random, mix, embedder, ...)."""
    from routers.evaluation.pipeline import DEFAULT_ROUTERS, EvalConfig, evaluate
    from routers.evaluation.report import write_outputs

    cfg = EvalConfig(routers=list(routers or DEFAULT_ROUTERS), benchmarks=list(benchmarks or BENCHMARKS), **kwargs)
    if cfg.folds < 2:
        raise ConfigError(f"--folds must be >= 2, got {cfg.folds}")
    if cfg.curve_draws < 1:
        raise ConfigError(f"--curve-draws must be >= 1, got {cfg.curve_draws}")
    from routers.evaluation.protocol import recipe

    for name in cfg.recipes:
        recipe(name)  # an unknown recipe fails here, naming the known ones, before any work
    if cfg.n_random < 2:
        raise ConfigError(f"--n-random must be >= 2, got {cfg.n_random}")
    result = evaluate(cfg)
    paths = write_outputs(result, out, command=command, markdown_path=doc)
    result["outputs"] = {k: str(v) for k, v in paths.items()}
    return result


def _cmd(args: argparse.Namespace) -> int:
    command = args.command_line if args.record_command else None
    result = run_eval(
        routers=_split(args.routers) or None,
        benchmarks=_split(args.benchmarks) or None,
        out=args.out,
        doc=args.doc,
        command=command,
        data_dir=args.data_dir,
        mix=args.mix,
        strong_models=_split(args.strong_models) or None,
        weak_models=_split(args.weak_models) or None,
        embedder=args.embedder,
        folds=args.folds,
        seed=args.seed,
        n_random=args.n_random,
        decontaminate=not args.no_decontaminate,
        threshold=args.threshold,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        strong_price=args.strong_price,
        weak_price=args.weak_price,
        progress=not args.quiet,
        recipes=_split(args.recipes),
        curve=not args.no_curve,
        curve_draws=args.curve_draws,
    )
    for name, b in result["benchmarks"].items():
        r = b["random"]["apgr"]
        print(f"{name}: n={b['n']} random APGR {r['mean']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] "
              f"oracle {b['oracle']['apgr']:.3f}")
        protocol_rows = [row for res in b.get("protocol", {}).values() for row in res["rows"]]
        for row in b["rows"] + protocol_rows:
            print(f"  {row['router']:<22} APGR {row['apgr']:.3f}  CPT50 {100 * row['cpt50']:.1f}%  "
                  f"CPT80 {100 * row['cpt80']:.1f}%  [{row['config']}]")
    print(f"wrote {result['outputs']['markdown']}, {result['outputs']['json']}")
    return 0


def _manipulation_cmd(args: argparse.Namespace) -> int:
    import json

    from routers.evaluation.manipulation import flip_share, probe_prompts
    from routers.registry import load_router

    prompts = probe_prompts(Path(args.data_dir) if args.data_dir else None, seed=args.seed)
    result = {"command": args.command_line, "routers": {}}
    for name in _split(args.routers):
        result["routers"][name] = flip_share(load_router(name), prompts, strong_share=args.strong_share)
        r = result["routers"][name]
        print(f"{name}: {100 * r['overall_share']:.1f}% of {r['n_weak']} weak-routed prompts flip to strong "
              f"(worst text {100 * r['max_share']:.1f}%)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def _judge_labels_cmd(args: argparse.Namespace) -> int:
    import json

    from routers.evaluation.judge_labels import evaluate_judge_labels, markdown, plot

    res = evaluate_judge_labels(args.embedder, n_random=args.n_random, n_boot=args.n_boot, seed=args.seed)
    res["command"] = args.command_line
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "results.md").write_text(markdown(res, args.command_line))
    plot(res, out / "judge-labels.png")
    print(markdown(res))
    print(f"wrote {out}/results.json, results.md, judge-labels.png")
    return 0


def add_cli(sub) -> None:
    j = sub.add_parser("eval-judge-labels", help="do length-controlled GPT-4-judge labels transfer better? (protocol (ii))",
                       description="Train the linear router on AlpacaEval judge labels (raw, length-controlled, GLM) "
                                   "and score MT Bench, MMLU and GSM8K, which it never saw.")
    j.add_argument("--out", default="results/judge-labels", help="output folder (results.json, results.md, PNG)")
    j.add_argument("--embedder", default="static", help="embedder spec (default static)")
    j.add_argument("--n-random", type=int, default=1000, help="random routings for random's band")
    j.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the paired differences")
    j.add_argument("--seed", type=int, default=0)
    j.set_defaults(func=_judge_labels_cmd)

    m = sub.add_parser("manipulation", help="share of weak-routed prompts that 'this is very hard' texts flip to strong",
                       description="For the prompts each router sends weak at a --strong-share split, append or "
                                   "prepend 12 fixed difficulty claims and report the share that flips to strong.")
    m.add_argument("--routers", default="linear_static", help="comma-separated router names or checkpoint dirs")
    m.add_argument("--strong-share", type=float, default=0.5, help="strong share that sets the threshold (default 0.5)")
    m.add_argument("--data-dir", default=None, help="the shared data folder (default ../shared/data)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", default=None, help="write the result as JSON here")
    m.set_defaults(func=_manipulation_cmd)

    p = sub.add_parser(
        "eval",
        help="evaluate routers on MT Bench / MMLU / GSM8K (or an outcomes CSV): APGR, CPT, plots",
        description="Evaluate routers on benchmarks. Always reports random (95% interval), the prompt-length "
        "baseline and the oracle. Writes results.md (paper layout, paper figures beside ours), results.json "
        "and one PNG per benchmark into --out.",
    )
    p.add_argument("--routers", default=None,
                   help="comma-separated registry names / checkpoint dirs, scored as trained "
                        "(default: the committed general-data checkpoints mf,sw_ranking,mf_static,sw_static)")
    p.add_argument("--benchmarks", default=None,
                   help=f"comma-separated: {','.join(BENCHMARKS)} or paths to outcomes CSVs (prompt,strong,weak); default: all")
    p.add_argument("--out", default="eval-out", help="output directory (default: eval-out)")
    p.add_argument("--doc", default=None, help="also write the Markdown report to this file (the report is also results.md in --out)")
    p.add_argument("--record-command", action="store_true", help="write the command line into the report (results.md and --doc)")
    p.add_argument("--data-dir", default=None, help="folder with mt_bench/, mmlu/, gsm8k/ (default: ../shared/data/benchmarks)")
    p.add_argument("--mix", default=None, help="training mix file (JSON/YAML) for decontamination and similarity")
    p.add_argument("--strong-models", default=None, help="comma-separated strong class for general targets (default: tiers 0-1)")
    p.add_argument("--weak-models", default=None, help="comma-separated weak class (default: tier 2)")
    p.add_argument("--embedder", default=None, help="embedder spec (default all-MiniLM-L6-v2; hash-64 for smoke tests)")
    p.add_argument("--folds", type=int, default=10, help="cross-fitting folds (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-random", type=int, default=1000, help="random routings for the baseline's interval")
    p.add_argument("--no-decontaminate", action="store_true", help="skip the embedding-cosine decontamination")
    p.add_argument("--threshold", type=float, default=0.95, help="contamination cosine threshold (default 0.95)")
    p.add_argument("--cache-dir", default=None, help="router score cache (default $RAYROUTE_CACHE/scores)")
    p.add_argument("--no-cache", action="store_true", help="recompute router scores")
    p.add_argument("--strong-price", type=float, default=24.7, help="strong model $ per M tokens (default 24.7)")
    p.add_argument("--weak-price", type=float, default=0.24, help="weak model $ per M tokens (default 0.24)")
    from routers.evaluation.protocol import RECIPES

    p.add_argument("--recipes", default="linear_static,linear",
                   help="training recipes run through the honest protocol: (i) cross-fitted in-domain, "
                        "(ii) leave-one-benchmark-out, (iii) learning curve; the first is the one the others are "
                        f"compared with (known: {', '.join(RECIPES)}; default linear_static,linear; '' for none)")
    p.add_argument("--no-curve", action="store_true", help="skip the (iii) learning curve")
    p.add_argument("--curve-draws", type=int, default=5, help="random draws per learning-curve point (default 5)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd)
