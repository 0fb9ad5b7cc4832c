"""The routing library: preference data, model tiers, embeddings, routers, training, evaluation.

This package never imports ray, fastapi or vllm (a unit test enforces it); the serving layer in
``deployments`` depends on it, never the other way round. Heavy modules (torch, transformers)
are imported lazily by the routers that need them, so ``import routers`` stays cheap.
"""

from routers.base import Router, strong_mask
from routers.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    EmbeddingError,
    RoutersError,
    UnknownModelError,
    UnknownRouterError,
)

__all__ = [
    "Router",
    "strong_mask",
    "RoutersError",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "EmbeddingError",
    "UnknownModelError",
    "UnknownRouterError",
]
