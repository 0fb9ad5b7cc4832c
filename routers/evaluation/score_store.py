"""On-disk cache of router scores: one ``.npy`` per (router fingerprint, benchmark prompts).

The key hashes the router's identity (for a checkpoint: its config.json and the names, sizes and
modification times of its files, so retraining invalidates it) and the exact list of prompts, so
a cached array is only reused for the same router on the same questions in the same order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def default_score_cache_dir() -> Path:
    root = os.environ.get("RAYROUTE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "rayroute"
    return base / "scores"


def prompts_digest(prompts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in prompts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def checkpoint_fingerprint(path: str | Path) -> str:
    """Content of config.json plus (name, size, mtime) of every file of a checkpoint directory."""
    path = Path(path)
    parts = []
    for f in sorted(path.rglob("*")):
        if f.is_file():
            st = f.stat()
            parts.append([str(f.relative_to(path)), st.st_size, st.st_mtime_ns])
    cfg = path / "config.json"
    text = cfg.read_text() if cfg.is_file() else ""
    return hashlib.sha256(json.dumps([text, parts]).encode()).hexdigest()


class ScoreStore:
    """Router scores on disk, one .npy per (router, prompts) key (the serving layer's in-memory
    per-prompt cache is ``deployments.score_cache.ScoreCache``)."""

    def __init__(self, cache_dir: str | Path | None = None, enabled: bool = True) -> None:
        self.dir = Path(cache_dir) if cache_dir else default_score_cache_dir()
        self.enabled = enabled

    def key(self, router_id: str, prompts: Sequence[str]) -> str:
        return hashlib.sha256(f"{router_id}\x00{prompts_digest(prompts)}".encode()).hexdigest()[:32]

    def get(self, router_id: str, prompts: Sequence[str]) -> np.ndarray | None:
        if not self.enabled:
            return None
        f = self.dir / f"{self.key(router_id, prompts)}.npy"
        if not f.is_file():
            return None
        try:
            arr = np.load(f)
        except (OSError, ValueError):
            return None
        return arr if arr.shape == (len(prompts),) else None

    def put(self, router_id: str, prompts: Sequence[str], scores: np.ndarray) -> None:
        if not self.enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        f = self.dir / f"{self.key(router_id, prompts)}.npy"
        tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, np.asarray(scores, dtype=np.float64))
        os.replace(tmp, f)
