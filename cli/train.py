"""``rayroute train {mf,sw_ranking,bert,causal_llm,linear,linear_aux}``: one command per router, each a thin wrapper
around a plain trainer function (``train_mf``, ``build_sw``, ``train_bert``, ``train_causal_llm``, ``train_linear``,
``train_linear_aux``).

Trainers are imported when the command runs, not when the parser is built, so ``rayroute --help``
stays fast and a missing optional trainer is a clear error, not an ImportError at start-up.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from typing import Any

from routers.errors import ConfigError

#: router -> "module:function". bert / causal_llm trainers live in their own modules.
TRAINERS: dict[str, str] = {
    "mf": "routers.training.mf:train_mf",
    "sw_ranking": "routers.training.sw_ranking:build_sw",
    "bert": "routers.training.bert:train_bert",
    "causal_llm": "routers.training.causal_llm:train_causal_llm",
    "linear": "routers.training.linear:train_linear",
    "linear_aux": "routers.training.linear:train_linear_aux",
}


def trainer(router: str):
    """The trainer function of ``router``; ConfigError if unknown or not importable."""
    if router not in TRAINERS:
        raise ConfigError(f"no trainer for router {router!r}; trainable routers: {', '.join(TRAINERS)}")
    module_name, _, fn = TRAINERS[router].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the {router} trainer ({module_name}) cannot be imported: {exc}; "
            f"is that part of the project installed?"
        ) from exc
    if not hasattr(module, fn):
        raise ConfigError(f"{module_name} has no function {fn!r}; the {router} trainer is incomplete")
    return getattr(module, fn)


def _read_mix(path: str | None):
    """None (the default mix), a ``.jsonl`` file of canonical records, or a mix file (JSON/YAML),
    which ``routers.training.data.load_mix`` reads; both are resolved by ``load_preferences``."""
    return path


def run_train(router: str, **options: Any):
    """Call the trainer of ``router`` with the options it accepts (None values dropped).

    An option the trainer does not take is an error naming what it does take, so a typo in a
    flag never silently trains with defaults.
    """
    fn = trainer(router)
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in options.items() if v is not None}
    if "base_model" in kwargs and "base_model" not in params and "base" in params:
        kwargs["base"] = kwargs.pop("base_model")  # the classifier trainers call it `base`
    if "out_dir" in params and "out_dir" not in kwargs:
        from routers.registry import default_checkpoint_dir

        kwargs["out_dir"] = default_checkpoint_dir() / router
    for name, param in params.items():
        # a trainer may take its data as a required first argument (None = build from the mix)
        if name == "frame" and param.default is inspect.Parameter.empty and name not in kwargs:
            kwargs[name] = None
    unknown = [k for k in kwargs if k not in params and not takes_any]
    if unknown:
        raise ConfigError(f"the {router} trainer does not take {unknown}; it takes {sorted(params)}")
    return fn(**kwargs)


def _train_cmd(args: argparse.Namespace) -> int:
    options = {
        "mix": _read_mix(args.mix), "out_dir": args.out, "epochs": args.epochs, "seed": args.seed,
        "strong": args.strong, "weak": args.weak, "embedder": args.embedder, "lr": args.lr,
        "batch_size": args.batch_size, "val_fraction": args.val_fraction, "dim": args.dim,
        "max_prompts": args.max_prompts, "group_by": args.group_by, "base_model": args.base_model,
        "max_steps": args.max_steps, "max_length": args.max_length, "grad_accum": args.grad_accum,
        "lora": True if args.lora else None, "num_layers": args.num_layers, "sources": args.sources,
        "labels": args.labels, "labels_weight": args.labels_weight,
    }
    epochs = options["epochs"]
    if epochs is not None and float(epochs).is_integer():
        options["epochs"] = int(epochs)  # mf counts whole epochs; the classifiers take fractions too
    run_train(args.router, **options)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("train", help="train a router on the training mix and write its checkpoint",
                       description="Train a router (mf, sw_ranking, bert, causal_llm, linear, linear_aux). Prints "
                                   "a progress bar and one summary line; writes a checkpoint `rayroute route "
                                   "--router DIR` reads.")
    p.add_argument("router", choices=list(TRAINERS), help="which router to train")
    p.add_argument("--mix", help="training-mix file (default: the built-in default mix)")
    p.add_argument("--out", help="checkpoint directory (default: checkpoints/<router>)")
    p.add_argument("--epochs", type=float, help="training epochs (mf default 10; bert/causal_llm accept fractions)")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--batch-size", type=int, help="batch size")
    p.add_argument("--dim", type=int, help="mf: model-embedding dimension d_m (default 128)")
    p.add_argument("--val-fraction", type=float, help="held-out fraction of prompts (default 0.05)")
    p.add_argument("--strong", help="scoring pair: strong model or tier/group name (default: strong)")
    p.add_argument("--weak", help="scoring pair: weak model or tier/group name (default: weak)")
    p.add_argument("--embedder", help="prompt embedder: all-MiniLM-L6-v2 (the default, except for linear and "
                                      "linear_aux: static), static, openai:<model>, a sentence-transformers "
                                      "path, or hash-<dim> (tests)")
    p.add_argument("--max-prompts", type=int, help="sw_ranking: keep at most this many prompts")
    p.add_argument("--group-by", choices=["classes", "tiers"], help="sw_ranking: strong/weak classes or all tiers")
    p.add_argument("--base-model", help="bert/causal_llm: Hugging Face model name or local path")
    p.add_argument("--max-steps", type=int, help="bert/causal_llm: stop after this many optimizer steps (bounded CPU runs)")
    p.add_argument("--max-length", type=int, help="bert/causal_llm: truncate prompts to this many tokens")
    p.add_argument("--grad-accum", type=int, help="bert/causal_llm: gradient accumulation steps")
    p.add_argument("--num-layers", type=int, help="bert: keep only the base encoder's first k layers (faster, smaller)")
    p.add_argument("--lora", action="store_true", help="causal_llm: LoRA fine-tuning (peft) instead of full")
    p.add_argument("--sources", help="linear, linear_aux: comma-separated golden sources (default: mmlu,gsm8k,"
                                     "mt_bench,arc_challenge,mbpp)")
    p.add_argument("--labels", metavar="STORE", help="linear: also train on the traffic labels in this label "
                                                      "store directory (learning.store), mixed with --sources")
    p.add_argument("--labels-weight", type=float, help="linear: multiplier of the traffic labels' source weight "
                                                       "(default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_train_cmd)
