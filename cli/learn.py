"""``rayroute labels`` / ``promote`` / ``demo-learning``: learning from the server's own traffic
(docs/learning.md). Argument parsing only; the work is ``routers.learning``,
``deployments.promotion`` and ``bench.learning_demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from routers.paths import REPO_ROOT


def _labels_cmd(ns: argparse.Namespace) -> int:
    from routers.learning.store import ReadStats, read_labels

    stats = ReadStats()
    df = read_labels(ns.store, stats=stats)
    t = 1.0 - df["p_b_wins"] if len(df) else df["p_b_wins"]
    out = {"store": ns.store, "files": stats.files, "records": int(len(df)), "torn_tails_skipped": stats.torn_tail,
           "kinds": {k: int(v) for k, v in df["kind"].value_counts().items()},
           "strong_better": int((t > 0.5).sum()), "ties": int((t == 0.5).sum()), "weak_better": int((t < 0.5).sum())}
    print(json.dumps(out, indent=2))
    return 0


def _router_alias(ns: argparse.Namespace, config: dict) -> str:
    """``--router``, or the served default (``default_router``) of the config's application."""
    if ns.router:
        return ns.router
    from deployments.config import AppArgs
    from deployments.promotion import app_args

    return AppArgs.model_validate(app_args(config, ns.app)).default_router


def _promote_cmd(ns: argparse.Namespace) -> int:
    from deployments.promotion import run_promotion
    from routers.learning.gate import format_comparison

    config = yaml.safe_load(Path(ns.config).read_text())
    ns.router = _router_alias(ns, config)
    if not ns.dry_run:
        import ray

        ray.init(address=ns.address, log_to_driver=False)
    res = run_promotion(ns.labels, ns.router, config, app_name=ns.app,
                        sources=[s for s in ns.sources.split(",") if s], out_dir=ns.out, dry_run=ns.dry_run, k=ns.folds,
                        labels_weight=ns.labels_weight, min_gain=ns.min_gain)
    print(format_comparison(res))
    if res.get("config") is not None and ns.write_config:
        Path(ns.write_config).write_text(yaml.safe_dump(res["config"], sort_keys=False))
        print(f"promoted Serve config written to {ns.write_config}")
    if ns.json:
        Path(ns.json).write_text(json.dumps({k: v for k, v in res.items() if k != "config"}, indent=2))
    return 0


def _shadow_cmd(ns: argparse.Namespace) -> int:
    import ray

    from deployments.promotion import apply_config, promoted_config

    config = yaml.safe_load(Path(ns.config).read_text())
    ns.router = _router_alias(ns, config)
    shadow = {} if ns.off else {ns.router: {"source": str(Path(ns.candidate).resolve()), "threshold": ns.threshold}}
    new = promoted_config(config, ns.app, ns.router, None, shadow=shadow)
    ray.init(address=ns.address, log_to_driver=False)
    apply_config(new)
    if ns.write_config:
        Path(ns.write_config).write_text(yaml.safe_dump(new, sort_keys=False))
    print(f"shadow for {ns.router!r}: {shadow.get(ns.router) or 'off'}; its decisions: GET /v1/stats -> learning.shadow")
    return 0


def _demo_cmd(ns: argparse.Namespace) -> int:
    from bench.learning_demo import DemoArgs, add_no_loop, run_demo

    a = DemoArgs(out_dir=ns.out, sizes=tuple(int(x) for x in ns.sizes.split(",")), noise=ns.noise,
                 benchmarks=tuple(ns.benchmarks.split(",")), eval_questions=ns.eval_questions, seed=ns.seed,
                 load_rps=ns.load_rps)
    if ns.no_loop_only:
        add_no_loop(a)
    else:
        run_demo(a)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("labels", help="summarise a label store (records, kinds, outcomes, torn tails)")
    p.add_argument("store", help="label store directory (learning.store)")
    p.set_defaults(func=_labels_cmd)

    p = sub.add_parser("promote", help="gate a router trained on the label store; promote a winner by hot reload",
                       description="Train a candidate on the traffic labels (+ the general golden sources), compare it "
                                   "with the serving router on the labels the serving router never saw (cross-fitted "
                                   "APGR, paired bootstrap) and, if it wins beyond the noise, hot-reload it into the "
                                   "running app through Serve's user_config. --dry-run prints the comparison only.")
    p.add_argument("--labels", required=True, metavar="STORE", help="label store directory")
    p.add_argument("--router", help="alias of the served router to replace (default: the config's default_router)")
    p.add_argument("--config", default=str(REPO_ROOT / "serve_config.yaml"), help="the Serve config the app runs")
    p.add_argument("--app", default="rayroute", help="application name in the Serve config")
    p.add_argument("--sources", default="mt_bench,arc_challenge,mbpp",
                   help="general golden sources mixed with the labels (comma-separated; '' for none)")
    p.add_argument("--labels-weight", type=float, default=1.0, help="multiplier of the labels' source weight")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds of the gate")
    p.add_argument("--min-gain", type=float, default=0.0, help="APGR gain the whole 95 %% interval must exceed")
    p.add_argument("--out", help="candidate checkpoint directory (default: <store>/routers/...)")
    p.add_argument("--dry-run", action="store_true", help="print the comparison; train, promote and touch nothing")
    p.add_argument("--address", default="auto", help="Ray cluster address (default: auto)")
    p.add_argument("--write-config", help="also write the promoted Serve config (with the user_config) here")
    p.add_argument("--json", help="write the comparison as JSON here")
    p.set_defaults(func=_promote_cmd)

    p = sub.add_parser("shadow", help="let a candidate router score live traffic beside a served one, changing nothing",
                       description="Sets the ingress's shadow candidate (Serve user_config, in place): it scores every "
                                   "prompt the served router routes, after the answer, and only counts its agreement "
                                   "and would-be strong share (/v1/stats learning.shadow).")
    p.add_argument("--router", help="alias of the served router to shadow (default: the config's default_router)")
    p.add_argument("--candidate", help="candidate checkpoint directory")
    p.add_argument("--threshold", type=float, default=0.5, help="the candidate's threshold")
    p.add_argument("--off", action="store_true", help="remove the shadow")
    p.add_argument("--config", default=str(REPO_ROOT / "serve_config.yaml"), help="the Serve config the app runs")
    p.add_argument("--app", default="rayroute", help="application name in the Serve config")
    p.add_argument("--address", default="auto", help="Ray cluster address (default: auto)")
    p.add_argument("--write-config", help="also write the resulting Serve config here")
    p.set_defaults(func=_shadow_cmd)

    p = sub.add_parser("demo-learning", help="the end-to-end learning demonstration on fake backends (docs/learning.md)")
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "learning"), help="output directory (JSON, Markdown, PNG)")
    p.add_argument("--sizes", default="100,250,500,1000,2000", help="label counts at which to retrain and gate")
    p.add_argument("--noise", type=float, default=0.0, help="share of judge verdicts flipped")
    p.add_argument("--benchmarks", default="mmlu,gsm8k", help="traffic, in order")
    p.add_argument("--eval-questions", type=int, default=1000, help="unseen questions scored per evaluation")
    p.add_argument("--load-rps", type=float, default=5.0, help="background chat requests/s during promotions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-loop-only", action="store_true", help="only add the no-loop baseline row to an existing "
                                                                "run's results in --out (same arguments as the run)")
    p.set_defaults(func=_demo_cmd)
