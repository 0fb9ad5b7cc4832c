"""A bounded in-memory cache of router scores, for one loaded router in one replica.

Why: a transformer router (MiniLM mf / sw_ranking, bert) spends 15-25 ms of CPU per prompt
(docs/routing-overhead.md), and the same text often comes back: clients that ask ``/v1/route``
and then chat with the same prompt, retries, the same prompt at several thresholds, canned test
prompts. A hit returns the score the router gave that text before, so decisions are unchanged.

Keys are 16-byte BLAKE2b digests of the text: memory does not grow with prompt length and no
prompt is kept. Only deterministic routers are cached (``Router.deterministic``; the random
router is not, unless it hashes prompts). The cache belongs to one loaded router: a reload builds
a new one, so scores of an old checkpoint are never served.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ScoreCache:
    """LRU of text -> P(strong), at most ``max_entries`` (~180 bytes each, measured). Thread-safe: the
    replica scores in a worker thread."""

    def __init__(self, max_entries: int) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries!r}")
        self.max_entries = max_entries
        self._scores: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> float | None:
        """The cached score of ``text`` (counted as a hit), or None (not counted: the caller then
        goes through ``score``, which counts it)."""
        k = _key(text)
        with self._lock:
            s = self._scores.get(k)
            if s is not None:
                self._scores.move_to_end(k)
                self.hits += 1
            return s

    def score(self, texts: Sequence[str], score_fn: Callable[[list[str]], Any]) -> list[tuple[float, bool]]:
        """(score, was_cached) per text, in order. Texts not cached (each distinct one once) go to
        ``score_fn`` in one call; if it raises, nothing is stored and the error propagates."""
        keys = [_key(t) for t in texts]
        out: list[tuple[float, bool] | None] = [None] * len(texts)
        todo: dict[bytes, tuple[str, list[int]]] = {}
        with self._lock:
            for i, (k, t) in enumerate(zip(keys, texts)):
                s = self._scores.get(k)
                if s is not None:
                    self._scores.move_to_end(k)
                    out[i] = (s, True)
                else:
                    todo.setdefault(k, (t, []))[1].append(i)
            misses = sum(len(idx) for _, idx in todo.values())
            self.hits += len(texts) - misses
            self.misses += misses
        if todo:
            fresh = [float(s) for s in score_fn([t for t, _ in todo.values()])]
            with self._lock:
                for (k, (_, idx)), s in zip(todo.items(), fresh):
                    for i in idx:
                        out[i] = (s, False)
                    self._scores[k] = s
                    self._scores.move_to_end(k)
                while len(self._scores) > self.max_entries:
                    self._scores.popitem(last=False)
        return out  # type: ignore[return-value]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._scores), "max_entries": self.max_entries,
                    "hits": self.hits, "misses": self.misses}
