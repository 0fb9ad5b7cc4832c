"""Router names -> classes, and loading a router from a name or a checkpoint directory.

Classes are imported lazily (by module path) so that asking for ``random`` never imports torch.

A checkpoint is a directory holding ``config.json`` (with at least ``{"router": "<name>"}``) and the
weights the router's ``save`` wrote (safetensors or npz).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from routers.base import Router, strong_mask
from routers.errors import CheckpointError, UnknownRouterError
from routers.paths import REPO_ROOT

#: name -> "module:Class". One entry per router; the order is the documentation order.
ROUTER_CLASSES: dict[str, str] = {
    "random": "routers.models.random:RandomRouter",
    "sw_ranking": "routers.models.sw_ranking:SWRankingRouter",
    "mf": "routers.models.mf:MatrixFactorizationRouter",
    "bert": "routers.models.bert:BertClassifierRouter",
    "causal_llm": "routers.models.causal_llm:CausalLLMRouter",
    "length": "routers.models.length:LengthRouter",
    "linear": "routers.models.linear:LinearRouter",
    "linear_aux": "routers.models.linear_aux:LinearAuxRouter",
}

CONFIG_FILE = "config.json"


def default_checkpoint_dir() -> Path:
    """Where named checkpoints live: $RAYROUTE_CHECKPOINTS, else ``checkpoints/`` in the repo."""
    env = os.environ.get("RAYROUTE_CHECKPOINTS")
    return Path(env) if env else REPO_ROOT / "checkpoints"


def router_class(name: str) -> type[Router]:
    """The class registered under ``name``; UnknownRouterError lists the known names."""
    try:
        target = ROUTER_CLASSES[name]
    except KeyError:
        raise UnknownRouterError(
            f"unknown router {name!r}; known routers: {', '.join(ROUTER_CLASSES)}"
        ) from None
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def read_config(path: str | Path, known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read and minimally validate ``config.json`` of a checkpoint directory; its router must be one
    of ``known`` (default: the two-model routers, ``ROUTER_CLASSES``)."""
    known = ROUTER_CLASSES if known is None else known
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {str(path)!r} does not exist")
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} has no {CONFIG_FILE}; was it written by Router.save?")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {str(cfg_path)!r}: {exc}") from exc
    if not isinstance(cfg, dict) or not isinstance(cfg.get("router"), str):
        raise CheckpointError(f"{str(cfg_path)!r} must be a JSON object with a string field 'router'")
    if cfg["router"] not in known:
        raise CheckpointError(
            f"{str(cfg_path)!r} names router {cfg['router']!r}; known routers: {', '.join(known)}"
        )
    return cfg


def write_config(path: str | Path, cfg: dict[str, Any]) -> None:
    """Write ``config.json`` atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path / CONFIG_FILE)


def resolve(name_or_path: str | Path) -> tuple[type[Router], Path | None]:
    """The router class and checkpoint directory ``load_router`` would use (None: no checkpoint),
    without loading anything; raises the errors it would raise, naming the fix.

    - A path to a directory with ``config.json``: that checkpoint, as the router it names.
    - ``random`` / ``length``: need no checkpoint (``<checkpoint dir>/<name>`` is used if present).
    - Another registry name: ``<default_checkpoint_dir()>/<name>``, which must exist.
    - Any other name of a checkpoint directory there (e.g. ``mf_static``): that checkpoint, as the
      router its ``config.json`` names.
    """
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return router_class(read_config(candidate)["router"]), candidate
    name = str(name_or_path)
    if "/" in name or name.startswith("."):  # a path, not a name: say which directory is missing
        read_config(candidate)
    ckpt = default_checkpoint_dir() / name
    if name not in ROUTER_CLASSES and ckpt.is_dir():
        return router_class(read_config(ckpt)["router"]), ckpt
    cls = router_class(name)  # raises UnknownRouterError for unknown names
    if ckpt.is_dir():
        return cls, ckpt
    if getattr(cls, "needs_checkpoint", True):
        raise CheckpointError(
            f"router {name!r} needs a trained checkpoint and {str(ckpt)!r} does not exist; "
            f"train one with `rayroute train {name}` or pass a checkpoint path"
        )
    return cls, None


def load_router(name_or_path: str | Path, **overrides: Any) -> Router:
    """Load a router by registry name or checkpoint path (resolved as ``resolve`` says)."""
    cls, ckpt = resolve(name_or_path)
    return cls.load(ckpt, **overrides) if ckpt is not None else cls(**overrides)


def route_prompts(router: str | Path, prompts: Sequence[str], threshold: float, **router_kwargs: Any) -> list[dict]:
    """Score ``prompts`` with ``router`` (name or checkpoint path) and apply ``threshold``: one
    ``{prompt, p_strong, threshold, routed_to}`` per prompt (``rayroute route``)."""
    r = load_router(router, **router_kwargs)
    p = r.score(list(prompts))
    mask = strong_mask(p, threshold)
    return [
        {"prompt": q, "p_strong": float(s), "threshold": float(threshold), "routed_to": "strong" if m else "weak"}
        for q, s, m in zip(prompts, p, mask)
    ]
