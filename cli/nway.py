"""``rayroute train-nway`` and ``rayroute eval-nway``: N-way quality routers (issue 19).

    rayroute train-nway mf --sources routerbench --embedder static --out checkpoints/nway_mf
    rayroute eval-nway --out results/nway --record-command
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cli import split_list as _split
from routers.errors import ConfigError

log = logging.getLogger(__name__)


def train_nway(router: str, sources: str = "routerbench", embedder: str = "static", out: str | Path | None = None,
               seed: int = 0, command: str | None = None) -> Path:
    """Fit ``router`` (knn, head, mf) on every question of ``sources`` (their models' union is the
    vocabulary; a model's outcome is missing on another source's questions) and save it."""
    import numpy as np

    from routers.data.nway import load_families
    from routers.embeddings import embedder_from_spec
    from routers.registry import default_checkpoint_dir

    fams = load_families(sources)
    models = list(dict.fromkeys(m for f in fams for m in f.models))
    prompts = [p for f in fams for p in f.prompts]
    y = np.full((len(prompts), len(models)), np.nan)
    row = 0
    for f in fams:
        y[row:row + len(f.prompts), [models.index(m) for m in f.models]] = f.outcomes
        row += len(f.prompts)
    usd = [f for f in fams if f.cost_unit.startswith("USD")]
    mean_cost = {m: float(np.mean(np.concatenate([f.costs[:, f.models.index(m)] for f in usd if m in f.models])))
                 for m in models if any(m in f.models for f in usd)}
    emb_model = embedder_from_spec(embedder)
    log.info("train-nway %s: embedding %d prompts with %s", router, len(prompts), emb_model.name)
    emb = np.asarray(emb_model.embed(prompts), dtype=np.float32)
    info = {"sources": _split(sources) if isinstance(sources, str) else list(sources),
            "families": {f.name: len(f.prompts) for f in fams}, "seed": seed, "command": command,
            "mean_cost_usd_per_query": mean_cost}
    from routers.nway.registry import fit_quality_router

    r = fit_quality_router(router, prompts, emb, y, models, embedder=emb_model, seed=seed, info=info)
    path = r.save(Path(out) if out else default_checkpoint_dir() / f"nway_{router}")
    size = sum(p.stat().st_size for p in path.iterdir())
    print(f"train-nway {router}: {len(prompts)} prompts × {len(models)} models -> {path} ({size / 1e6:.2f} MB)")
    return path


def _train_cmd(args: argparse.Namespace) -> int:
    train_nway(args.router, args.sources, args.embedder, args.out, args.seed, args.command_line)
    return 0


def _eval_cmd(args: argparse.Namespace) -> int:
    from routers.data.nway import load_families
    from routers.embeddings import embedder_from_spec
    from routers.evaluation.nway import evaluate_families
    from routers.evaluation.nway_report import write_outputs

    seeds = [int(s) for s in _split(args.seeds)]
    fams = load_families(args.sources)
    if args.families:
        keep = set(_split(args.families))
        unknown = keep - {f.name for f in fams}
        if unknown:
            raise ConfigError(f"unknown famil(ies) {sorted(unknown)}; known: {', '.join(f.name for f in fams)}")
        fams = [f for f in fams if f.name in keep]
    result = evaluate_families(fams, embedder_from_spec(args.embedder), _split(args.routers), args.folds, seeds,
                               command=args.command_line if args.record_command else None, log_fn=print)
    paths = write_outputs(result, args.out, plots=not args.no_plots)
    for fam in result["families"]:
        for r in result["routers"]:
            mg = fam["margins"][r]["zero"]
            print(f"{fam['family']:<28} {r:<5} AIQ {fam['aiq'][r]['mean']:.4f}  vs Zero {mg['mean']:+.4f} "
                  f"[{mg['min']:+.4f}, {mg['max']:+.4f}]")
    print(f"wrote {paths['markdown']}, {paths['json']}")
    return 0


def add_cli(sub) -> None:
    t = sub.add_parser("train-nway", help="train an N-way quality router (knn, head, mf) on correctness matrices",
                       description="Fit a router predicting every model's quality per prompt on all questions of "
                                   "--sources and save a checkpoint (config.json + model.safetensors).")
    t.add_argument("router", choices=["knn", "head", "mf"])
    t.add_argument("--sources", default="routerbench", help="comma-separated: routerbench, open7 (default routerbench)")
    t.add_argument("--embedder", default="static", help="embedder spec (default static; hash-64 for smoke tests)")
    t.add_argument("--out", default=None, help="checkpoint directory (default checkpoints/nway_<router>)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_train_cmd)

    e = sub.add_parser("eval-nway", help="cross-fitted AIQ of N-way routers vs Zero, kNN, best pair and oracle",
                       description="k folds × seeds per family; writes results.json, results.md and a PNG per family.")
    e.add_argument("--sources", default="routerbench,open7", help="comma-separated: routerbench, open7")
    e.add_argument("--families", default=None, help="only these families (e.g. routerbench-mbpp)")
    e.add_argument("--routers", default="knn,head,mf", help="comma-separated N-way routers (default knn,head,mf)")
    e.add_argument("--embedder", default="static", help="embedder spec (default static)")
    e.add_argument("--folds", type=int, default=5)
    e.add_argument("--seeds", default="0,1,2", help="comma-separated fold seeds (default 0,1,2)")
    e.add_argument("--out", default="results/nway", help="output directory (default results/nway)")
    e.add_argument("--record-command", action="store_true", help="write the command line into the outputs")
    e.add_argument("--no-plots", action="store_true")
    e.set_defaults(func=_eval_cmd)
