"""``hash-<dim>``: a bag-of-words hashing embedder for smoke tests and CI, not a text model.

It needs no model and no download and is deterministic, so the training and evaluation commands
can run end to end in seconds (``rayroute train mf --embedder hash-64``, ``rayroute eval
--embedder hash-64``); the tests use it the same way. Never train a router to serve with it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from routers.errors import ConfigError

HASH_PREFIX = "hash-"


class HashingEmbedder:
    """Feature hashing of lower-cased words into ``dim`` signed buckets, L2-normalised float32.

    Prompts sharing words get similar vectors; it is a test/CI stand-in, not a real text model.
    """

    def __init__(self, dim: int = 64) -> None:
        if dim < 2:
            raise ConfigError(f"hash embedder dim must be >= 2, got {dim}")
        self.dim = int(dim)
        self.name = f"{HASH_PREFIX}{self.dim}"

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.md5(w.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
