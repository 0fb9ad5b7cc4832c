"""Text features shared by the linear router and the evaluation's ridge heads.

- ``length_feature`` / ``surface_features``: cheap counts (length, numbers, digits, operators,
  line breaks, words), each scaled to about [0, 1.5].
- ``HashedTfidf``: word 1-2-gram TF-IDF over a fixed hash space (scikit-learn's
  ``HashingVectorizer``: no vocabulary to store, the same bucket for a word on every machine),
  with the IDF learned from the training prompts. A checkpoint stores only the IDF vector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from routers.errors import ConfigError

_NUM = re.compile(r"\d+(?:\.\d+)?")
_OPS = re.compile(r"[=+\-*/^$%]")

#: Number of surface features ``surface_features`` returns (length first).
N_SURFACE = 6


def length_feature(prompts: Sequence[str]) -> np.ndarray:
    """log(1 + characters) / 8: about 0-1.3 for prompts up to ~30k characters."""
    return np.log1p(np.array([len(p) for p in prompts], dtype=np.float64)) / 8.0


def text_features(prompts: Sequence[str]) -> np.ndarray:
    """Five counts, each scaled to about [0, 1.5]: log count of numbers, digit share, log count of
    operator symbols, log count of line breaks, log word count."""
    out = np.empty((len(prompts), 5))
    for i, p in enumerate(prompts):
        out[i] = (np.log1p(len(_NUM.findall(p))), 5 * sum(c.isdigit() for c in p) / max(len(p), 1),
                  np.log1p(len(_OPS.findall(p))) / 2, np.log1p(p.count("\n")) / 2, np.log1p(len(p.split())) / 6)
    return out


def surface_features(prompts: Sequence[str]) -> np.ndarray:
    """[length_feature, text_features]: shape (N, N_SURFACE)."""
    return np.hstack([length_feature(prompts)[:, None], text_features(prompts)])


class HashedTfidf:
    """Sublinear TF-IDF of word 1-2-grams in ``2**bits`` hashed buckets, rows L2-normalised.

    ``fit`` learns the smoothed IDF (as scikit-learn's ``TfidfTransformer``) from training prompts;
    ``transform`` returns a scipy CSR matrix. ``idf`` is all the state a checkpoint needs."""

    def __init__(self, bits: int = 18, idf: np.ndarray | None = None) -> None:
        if not 10 <= int(bits) <= 24:
            raise ConfigError(f"hash bits must be in [10, 24], got {bits!r}")
        self.bits = int(bits)
        if idf is not None:
            idf = np.asarray(idf, dtype=np.float32)
            if idf.shape != (2 ** self.bits,):
                raise ConfigError(f"idf has shape {idf.shape}, expected ({2 ** self.bits},) for {self.bits} hash bits")
        self.idf = idf
        self._vec = None

    @property
    def vectorizer(self):
        if self._vec is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._vec = HashingVectorizer(n_features=2 ** self.bits, ngram_range=(1, 2), alternate_sign=False,
                                          norm=None, lowercase=True)
        return self._vec

    def _counts(self, prompts: Sequence[str]):
        x = self.vectorizer.transform(list(prompts)).tocsr().astype(np.float32)
        x.data = 1.0 + np.log(x.data)  # sublinear tf
        return x

    def fit(self, prompts: Sequence[str]) -> "HashedTfidf":
        x = self._counts(prompts)
        df = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float64)
        n = x.shape[0]
        self.idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        return self

    def transform(self, prompts: Sequence[str]):
        if self.idf is None:
            raise ConfigError("HashedTfidf.transform called before fit")
        # Scaled in place on the CSR arrays: scipy's diagonal-matrix products cost ~4 ms for one
        # prompt, more than everything else the served router does per request.
        x = self._counts(prompts)
        x.data *= self.idf[x.indices]
        sq = x.data * x.data
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        norms = np.sqrt(np.bincount(rows, weights=sq, minlength=x.shape[0])).astype(np.float32)
        x.data /= np.repeat(np.maximum(norms, 1e-12), np.diff(x.indptr))
        return x
