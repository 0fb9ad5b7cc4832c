"""N-way router names -> classes, and loading one from a name or a checkpoint directory.

Same layout as the two-model registry (``routers.registry``): a checkpoint is a directory with
``config.json`` naming the router (``{"router": "knn", ...}``) and its weights. Classes are
imported lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routers.embeddings import Embedder
from routers.errors import CheckpointError, ConfigError, UnknownRouterError
from routers.nway.base import QualityRouter
from routers.registry import default_checkpoint_dir, read_config

#: name -> "module:Class", in documentation order
QUALITY_ROUTER_CLASSES: dict[str, str] = {
    "knn": "routers.nway.knn:KNNQualityRouter",
    "head": "routers.nway.head:HeadQualityRouter",
    "mf": "routers.nway.mf:MFQualityRouter",
}


def fit_quality_router(name: str, prompts: Sequence[str], emb: np.ndarray, outcomes: np.ndarray,
                       models: Sequence[str], embedder: Embedder | None = None, embedder_name: str | None = None,
                       seed: int = 0, info: dict[str, Any] | None = None) -> QualityRouter:
    """Fit router ``name`` on precomputed embeddings, its hyper-parameter chosen inside these rows
    only (kNN's k and the head's penalty by inner CV, MF's epoch on 10 % of them): the one recipe
    per router of ``rayroute train-nway`` and of the cross-fitted evaluation."""
    embedder_name = embedder_name or (embedder.name if embedder is not None else None)
    info = dict(info or {})
    if name == "knn":
        from routers.nway.knn import KNNQualityRouter, choose_k

        k, cv = choose_k(emb, outcomes, seed=seed)
        return KNNQualityRouter(emb, outcomes, models, k=k, embedder=embedder, embedder_name=embedder_name,
                                info={**info, "k_cv_brier": cv})
    if name == "head":
        from routers.nway.head import HeadQualityRouter

        return HeadQualityRouter.fit_embeddings(prompts, emb, outcomes, models, alpha="cv", embedder=embedder,
                                                embedder_name=embedder_name, info=info, seed=seed)
    if name == "mf":
        from routers.training.nway_mf import fit_mf_quality

        return fit_mf_quality(emb, outcomes, models, embedder_name, seed=seed, info=info, embedder=embedder)
    raise ConfigError(f"unknown N-way router {name!r}; known: {', '.join(QUALITY_ROUTER_CLASSES)}")


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
