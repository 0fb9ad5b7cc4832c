"""An embedder from its name: what checkpoints store and ``--embedder`` takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from routers.embeddings.cache import CachedEmbedder
from routers.embeddings.common import DEFAULT_MODEL, Embedder
from routers.embeddings.hashing import HASH_PREFIX, HashingEmbedder
from routers.embeddings.minilm import SentenceTransformerEmbedder
from routers.embeddings.openai_api import OpenAIEmbedder
from routers.errors import ConfigError


def build_embedder(spec: str | None = None, cache: bool | str | Path = True, **kwargs: Any) -> Embedder:
    """Factory: ``None``/``"all-MiniLM-L6-v2"`` (default, offline), ``"onnx"`` / ``"onnx-int8"``
    (the same model on ONNX Runtime, see ``onnx_runtime``), ``"static"`` (MiniLM's word-piece
    vectors averaged: a different, far cheaper embedding, see ``static``), ``"openai:<model>"``, or any
    sentence-transformers name/path. ``cache`` True uses the default cache dir, a path uses that
    directory, False disables caching."""
    spec = spec or DEFAULT_MODEL
    if spec.startswith("openai:"):
        inner: Embedder = OpenAIEmbedder(model=spec.split(":", 1)[1], **kwargs)
    elif spec == "static" or spec.startswith("static-"):
        from routers.embeddings.static import StaticMiniLMEmbedder, check_static_spec

        check_static_spec(spec)  # a checkpoint's table version must be the one built here
        inner = StaticMiniLMEmbedder(**kwargs)
    elif spec in (f"onnx-fp32:{DEFAULT_MODEL}", f"onnx-int8:{DEFAULT_MODEL}", "onnx", "onnx-int8"):
        from routers.embeddings.onnx_runtime import OnnxMiniLMEmbedder

        precision = "int8" if "int8" in spec else "fp32"
        inner = OnnxMiniLMEmbedder(precision=precision, **kwargs)
    else:
        inner = SentenceTransformerEmbedder(spec, **kwargs)
    if cache is False or cache is None or inner.name.startswith("static-"):
        return inner  # (a static embedding costs less than a cache lookup)
    return CachedEmbedder(inner, None if cache is True else cache)


def embedder_from_spec(spec: str | None = None, cache: bool = True, **kwargs) -> Embedder:
    """Build an embedder from the name a checkpoint stores: ``hash-<dim>`` (smoke tests, see
    ``hashing``) or any ``build_embedder`` spec; ``kwargs``
    (``device``, ``batch_size``, ``num_threads``) go to the model embedder's constructor."""
    if spec and spec.startswith(HASH_PREFIX):
        try:
            dim = int(spec[len(HASH_PREFIX):])
        except ValueError:
            raise ConfigError(f"embedder {spec!r}: expected 'hash-<dim>', e.g. 'hash-64'") from None
        return HashingEmbedder(dim)
    return build_embedder(spec, cache=cache, **kwargs)
