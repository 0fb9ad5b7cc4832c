"""Decontamination (paper appendix B) and the benchmark-dataset similarity score (appendix C, Eq. 14).

Both rest on the maximum cosine similarity of each evaluation prompt to a set of training prompts,
computed in blocks from L2-normalised embeddings (so a dot product is the cosine).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from routers.data.benchmarks import Benchmark
from routers.errors import ConfigError

#: The paper's contamination threshold on embedding cosine similarity.
CONTAMINATION_THRESHOLD = 0.95


def max_cosine(queries: np.ndarray, corpus: np.ndarray, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``queries`` the max cosine to any row of ``corpus`` and its index.
    Rows must be L2-normalised (the ``Embedder`` contract)."""
    q = np.asarray(queries, dtype=np.float32)
    c = np.asarray(corpus, dtype=np.float32)
    if q.ndim != 2 or c.ndim != 2 or (len(c) and q.shape[1] != c.shape[1]):
        raise ConfigError(f"embeddings must be 2-D with one width, got {q.shape} and {c.shape}")
    if len(c) == 0:
        return np.full(len(q), -np.inf), np.full(len(q), -1)
    best = np.full(len(q), -np.inf, dtype=np.float64)
    arg = np.full(len(q), -1, dtype=np.int64)
    for start in range(0, len(c), block):
        sims = q @ c[start:start + block].T
        j = sims.argmax(axis=1)
        v = sims[np.arange(len(q)), j]
        better = v > best
        best[better] = v[better]
        arg[better] = j[better] + start
    return best, arg


def benchmark_similarity(bench_emb: np.ndarray, data_emb: np.ndarray) -> float:
    """Eq. 14: S(B, D) = mean over benchmark prompts of the max cosine to any dataset prompt."""
    if len(bench_emb) == 0:
        raise ConfigError("benchmark similarity needs at least one benchmark prompt")
    if len(data_emb) == 0:
        raise ConfigError("benchmark similarity needs at least one dataset prompt")
    return float(np.mean(max_cosine(bench_emb, data_emb)[0]))


def decontaminate(bench: Benchmark, bench_emb: np.ndarray, sources: Mapping[str, np.ndarray],
                  threshold: float = CONTAMINATION_THRESHOLD) -> tuple[Benchmark, np.ndarray, dict]:
    """Drop benchmark questions whose cosine to any training prompt is >= ``threshold``.

    ``sources``: training source name -> embeddings of its prompts. Returns the reduced benchmark,
    the matching rows of ``bench_emb``, and a report ``{source: count}`` (a question near several
    sources is counted under each; ``"total"`` counts each dropped question once)."""
    if not 0 < threshold <= 1:
        raise ConfigError(f"contamination threshold must be in (0, 1], got {threshold!r}")
    if len(bench_emb) != len(bench):
        raise ConfigError(f"{len(bench_emb)} embeddings for {len(bench)} benchmark questions")
    hit_any = np.zeros(len(bench), dtype=bool)
    report: dict[str, int] = {}
    for name, emb in sources.items():
        best, _ = max_cosine(bench_emb, emb)
        hit = best >= threshold
        report[name] = int(hit.sum())
        hit_any |= hit
    report["total"] = int(hit_any.sum())
    out = bench.subset(~hit_any, f"embedding cosine >= {threshold} to a training prompt")
    return out, bench_emb[~hit_any], report

