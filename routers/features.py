"""Text features of the linear routers.

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


def _digits(text: str) -> int:
    """``sum(c.isdigit() for c in text)``, fast for ASCII text (a per-character loop cost more than
    the rest of the features together on the serving path)."""
    if text.isascii():
        return sum(text.count(d) for d in "0123456789")
    return sum(c.isdigit() for c in text)


def text_features(prompts: Sequence[str]) -> np.ndarray:
    """Five counts, each scaled to about [0, 1.5]: log count of numbers, digit share, log count of
    operator symbols, log count of line breaks, log word count."""
    out = np.empty((len(prompts), 5))
    for i, p in enumerate(prompts):
        out[i] = (np.log1p(len(_NUM.findall(p))), 5 * _digits(p) / max(len(p), 1),
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

    def _counts(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sublinear term frequencies as CSR arrays (data, indices, indptr)."""
        x = self.vectorizer.transform(list(prompts))
        return 1.0 + np.log(x.data.astype(np.float32)), x.indices, x.indptr

    def fit(self, prompts: Sequence[str]) -> "HashedTfidf":
        _, indices, _ = self._counts(prompts)
        df = np.bincount(indices, minlength=2 ** self.bits).astype(np.float64)
        n = len(prompts)
        self.idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        return self

    def _weights(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """L2-normalised TF-IDF as CSR arrays, plus each stored value's row. Computed on the arrays:
        scipy's matrix products cost ~4 ms for one prompt, more than the rest of the served router."""
        if self.idf is None:
            raise ConfigError("HashedTfidf.transform called before fit")
        data, indices, indptr = self._counts(prompts)
        data = data * self.idf[indices]
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(indptr) - 1)).astype(np.float32)
        return data / np.maximum(norms, 1e-12)[rows], indices, indptr, rows

    def transform(self, prompts: Sequence[str]):
        """The TF-IDF rows as a scipy CSR matrix (training)."""
        import scipy.sparse as sp

        data, indices, indptr, _ = self._weights(prompts)
        return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, 2 ** self.bits))

    def dot(self, prompts: Sequence[str], coef: np.ndarray) -> np.ndarray:
        """``transform(prompts) @ coef`` without building a matrix (the serving path)."""
        data, indices, indptr, rows = self._weights(prompts)
        return np.bincount(rows, weights=data * np.asarray(coef, dtype=np.float64)[indices], minlength=len(indptr) - 1)
