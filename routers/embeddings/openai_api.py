"""OpenAI embeddings through the official client: the paper's setup (text-embedding-3-small)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from routers.embeddings.common import OPENAI_MODEL, batches, l2_normalize
from routers.errors import EmbeddingError


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
        chunks_of = batches(texts, self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            chunks_of = tqdm(list(chunks_of), desc=f"embed {self.name}", unit="batch")
        for _, batch in chunks_of:
            resp = client.embeddings.create(model=self.model, input=list(batch))
            chunks.append(np.array([d.embedding for d in resp.data], dtype=np.float32))
        if not chunks:
            return np.zeros((0, max(self.dim, 0)), dtype=np.float32)
        out = l2_normalize(np.concatenate(chunks))
        self.dim = out.shape[1]
        return out
