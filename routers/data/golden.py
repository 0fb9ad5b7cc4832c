"""Golden outcomes of the served pair: which questions gpt-4-1106-preview answers better than
Mixtral-8x7B, graded, not judged.

Each source gives, per question, the prompt routed on and P(strong better) =
0.5 + (strong score − weak score) / (2 · range): 1, 0.5 or 0 for correctness, graded for MT Bench.

| source | questions | scores |
| --- | --- | --- |
| ``mmlu`` | 14,037 | correctness of both models (RouteLLM's evaluation files) |
| ``gsm8k`` | 1,307 | correctness |
| ``mt_bench`` | 72 | GPT-4 grades 1-10 (range 9), mean of the two turns |
| ``arc_challenge`` | 1,031 | RouterBench correctness (gpt-4-1106-preview, mixtral-8x7b-chat) |
| ``mbpp`` | 299 | RouterBench correctness |

Benchmark prompts are the ones the evaluation scores (contaminated rows dropped as RouteLLM does);
RouterBench prompts are the question without its few-shot prefix, as the router sees a user's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routers.errors import ConfigError, DataError

#: All golden sources, benchmarks first.
GOLDEN_SOURCES: tuple[str, ...] = ("mmlu", "gsm8k", "mt_bench", "arc_challenge", "mbpp")
ROUTERBENCH_FILES = {"arc_challenge": "arc_challenge.csv", "mbpp": "mbpp.csv"}
RB_STRONG, RB_WEAK = "gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"


@dataclass(frozen=True)
class GoldenSource:
    """One source's questions: ``prompts[i]`` with scores ``strong[i]`` / ``weak[i]`` and the
    training target ``targets[i]`` = P(strong better)."""

    name: str
    prompts: list[str]
    strong: np.ndarray
    weak: np.ndarray
    score_range: float

    @property
    def targets(self) -> np.ndarray:
        return pair_targets(self.strong, self.weak, self.score_range)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, keep: np.ndarray) -> "GoldenSource":
        idx = np.flatnonzero(np.asarray(keep, dtype=bool))
        return GoldenSource(self.name, [self.prompts[i] for i in idx], self.strong[idx], self.weak[idx],
                            self.score_range)


def pair_targets(strong: np.ndarray, weak: np.ndarray, score_range: float) -> np.ndarray:
    """0.5 + (strong − weak) / (2 · range), clipped to [0, 1]."""
    if score_range <= 0:
        raise ConfigError(f"score range must be > 0, got {score_range}")
    d = (np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64)) / (2 * score_range)
    return np.clip(0.5 + d, 0.0, 1.0)


def _routerbench(name: str, data_dir: Path | None) -> GoldenSource:
    from routers.data.preferences import read_routerbench, routed_question

    base = (Path(data_dir) / "preferences" / "routerbench") if data_dir else None
    raw = read_routerbench(base / ROUTERBENCH_FILES[name] if base else _default_rb(name))
    for col in (RB_STRONG, RB_WEAK):
        if col not in raw.columns:
            raise DataError(f"RouterBench {name}: no column {col!r}")
    s, w = raw[RB_STRONG].to_numpy(float), raw[RB_WEAK].to_numpy(float)
    ok = ~(np.isnan(s) | np.isnan(w))
    prompts = [routed_question(p) for p, k in zip(raw["prompt"], ok) if k]
    return GoldenSource(name, prompts, s[ok], w[ok], 1.0)


def _default_rb(name: str) -> Path:
    from routers.paths import default_data_dir

    return default_data_dir() / "preferences" / "routerbench" / ROUTERBENCH_FILES[name]


def load_golden(name: str, data_dir: str | Path | None = None) -> GoldenSource:
    """One golden source by name (``GOLDEN_SOURCES``); ``data_dir`` is the shared data folder."""
    if name not in GOLDEN_SOURCES:
        raise ConfigError(f"unknown golden source {name!r}; known: {', '.join(GOLDEN_SOURCES)}")
    if name in ROUTERBENCH_FILES:
        return _routerbench(name, Path(data_dir) if data_dir else None)
    from routers.data.benchmarks import load_benchmark

    bench = load_benchmark(name, Path(data_dir) / "benchmarks" if data_dir else None)
    rng = 9.0 if bench.scale == "grade" else 1.0
    return GoldenSource(name, list(bench.prompts), np.asarray(bench.strong, float), np.asarray(bench.weak, float), rng)


#: How sources are weighted when pooled: each row of source s weighs (N / n_s) ** SOURCE_POWER,
#: normalised to a mean of 1. 0 = every question counts once (MMLU's 14k rows then decide
#: everything), 1 = every source counts equally (72 MT Bench rows then weigh ~200 each and are
#: memorised); 0.5 is the usual compromise of multi-source training (temperature sampling).
SOURCE_POWER = 0.5


def source_weights(sizes: dict[str, int], power: float = SOURCE_POWER) -> dict[str, float]:
    """Per-row weight of each source (see ``SOURCE_POWER``); mean row weight 1."""
    if not 0 <= power <= 1:
        raise ConfigError(f"source weighting power must be in [0, 1], got {power}")
    sizes = {k: int(v) for k, v in sizes.items() if int(v) > 0}
    if not sizes:
        return {}
    total = sum(sizes.values())
    raw = {k: (total / n) ** power for k, n in sizes.items()}
    mean = sum(raw[k] * n for k, n in sizes.items()) / total
    return {k: v / mean for k, v in raw.items()}


def load_all_golden(names=GOLDEN_SOURCES, data_dir: str | Path | None = None) -> list[GoldenSource]:
    return [load_golden(n, data_dir) for n in names]
