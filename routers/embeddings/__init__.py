"""Text embeddings: one ``Embedder`` contract (``common``), the packaged MiniLM (``minilm``) and its
faster ONNX Runtime path (``onnx_runtime``), static MiniLM word-piece vectors (``static``), OpenAI
(``openai_api``), an on-disk cache (``cache``), a hashing embedder for smoke tests (``hashing``),
and ``build_embedder`` / ``embedder_from_spec`` (``factory``), which build one from its name.

Imports inside the package point one way: every embedder imports ``common``; only ``factory``
imports the embedders (ONNX and static lazily, as they are heavy).
"""

from routers.embeddings.cache import CachedEmbedder
from routers.embeddings.common import (
    DEFAULT_MODEL,
    OPENAI_MODEL,
    Embedder,
    default_cache_dir,
    l2_normalize,
    local_model_path,
)
from routers.embeddings.factory import build_embedder, embedder_from_spec
from routers.embeddings.hashing import HashingEmbedder
from routers.embeddings.minilm import SentenceTransformerEmbedder
from routers.embeddings.openai_api import OpenAIEmbedder

__all__ = [
    "DEFAULT_MODEL",
    "OPENAI_MODEL",
    "Embedder",
    "CachedEmbedder",
    "HashingEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "build_embedder",
    "default_cache_dir",
    "embedder_from_spec",
    "l2_normalize",
    "local_model_path",
]
