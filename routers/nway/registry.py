"""N-way router names -> classes, and loading one from a name or a checkpoint directory.

Same layout as the two-model registry (``routers.registry``): a checkpoint is a directory with
``config.json`` naming the router (``{"router": "knn", ...}``) and its weights. Classes are
imported lazily.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from routers.errors import CheckpointError, UnknownRouterError
from routers.nway.base import QualityRouter
from routers.registry import default_checkpoint_dir, read_config

#: name -> "module:Class", in documentation order
QUALITY_ROUTER_CLASSES: dict[str, str] = {
    "knn": "routers.nway.knn:KNNQualityRouter",
    "head": "routers.nway.head:HeadQualityRouter",
    "mf": "routers.nway.mf:MFQualityRouter",
}


def quality_router_class(name: str) -> type[QualityRouter]:
    try:
        target = QUALITY_ROUTER_CLASSES[name]
    except KeyError:
        raise UnknownRouterError(
            f"unknown N-way router {name!r}; known: {', '.join(QUALITY_ROUTER_CLASSES)}") from None
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def read_quality_config(path: str | Path) -> dict[str, Any]:
    """``config.json`` of an N-way checkpoint, checked to name a known N-way router."""
    return read_config(path, known=QUALITY_ROUTER_CLASSES)


def load_quality_router(name_or_path: str | Path, **overrides: Any) -> QualityRouter:
    """A checkpoint directory, or the name of one under the checkpoint directory (``checkpoints/``)."""
    path = Path(name_or_path)
    if not path.is_dir():
        name = str(name_or_path)
        if "/" in name or name.startswith("."):
            raise CheckpointError(f"N-way router checkpoint {name!r} does not exist")
        path = default_checkpoint_dir() / name
        if not path.is_dir():
            raise CheckpointError(
                f"N-way router {name!r}: {str(path)!r} does not exist; build it with `rayroute train-nway` "
                "or give a checkpoint directory")
    cfg = read_quality_config(path)
    return quality_router_class(cfg["router"]).load(path, **overrides)
