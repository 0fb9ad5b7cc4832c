"""An on-disk cache of embeddings keyed by (model name, text), in SQLite (training and evaluation)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routers.embeddings.common import Embedder, default_cache_dir


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
