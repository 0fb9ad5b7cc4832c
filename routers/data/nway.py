"""Correctness matrices for N-way routing: every model's outcome and cost on every question.

- RouterBench (``preferences/routerbench``): one family per file (``arc_challenge``, ``mbpp``),
  11 models, 0/1 correctness and ``<model>|total_cost`` in USD per answer. The routed text is the
  question itself (``routed_question``: the last block after the few-shot prefix). Questions where
  any model lacks an outcome are dropped (20 of 1,039 ARC questions, none of MBPP).
- open7 (``preferences/open7``): 7 open models, scores in [0, 1], no costs recorded. The cost of an
  answer is the model's parameter count in billions (``OPEN7_PARAMS``: the Mistral-7B family
  7.24 B, the Llama-3-8B family 8.03 B), a stand-in for price that only separates the two families.
  Files are grouped into ``OPEN7_FAMILIES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from routers.errors import ConfigError, DataError

#: parameters (billions) of each open7 model: its base model's size
OPEN7_PARAMS: dict[str, float] = {
    "mistralai/Mistral-7B-v0.1": 7.24, "meta-math/MetaMath-Mistral-7B": 7.24,
    "itpossible/Chinese-Mistral-7B-v0.1": 7.24, "HuggingFaceH4/zephyr-7b-beta": 7.24,
    "cognitivecomputations/dolphin-2.6-mistral-7b": 7.24,
    "meta-llama/Meta-Llama-3-8B": 8.03, "cognitivecomputations/dolphin-2.9-llama3-8b": 8.03,
}
#: family -> file name prefixes
OPEN7_FAMILIES: dict[str, tuple[str, ...]] = {
    "open7-arc": ("arc_",), "open7-math": ("gsm8k", "MATH"), "open7-code": ("humaneval", "mbpp", "javascript"),
    "open7-chinese": ("ceval", "cmmlu"),
}
SOURCES = ("routerbench", "open7")


@dataclass
class Family:
    """Questions with every model's outcome (n, m) in [0, 1] and cost (n, m), one model list."""

    name: str
    prompts: list[str]
    outcomes: np.ndarray
    costs: np.ndarray
    models: list[str]
    cost_unit: str
    note: str = ""
    emb: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n, m = len(self.prompts), len(self.models)
        if self.outcomes.shape != (n, m) or self.costs.shape != (n, m):
            raise ConfigError(f"family {self.name!r}: outcomes {self.outcomes.shape} and costs {self.costs.shape} "
                              f"must both be ({n}, {m})")
        if np.isnan(self.outcomes).any() or np.isnan(self.costs).any():
            raise DataError(f"family {self.name!r}: drop questions with a missing outcome or cost first")


def routerbench_families(path: str | Path | None = None) -> list[Family]:
    """One family per RouterBench file, questions with any missing outcome dropped."""
    from routers.data.preferences import read_routerbench, routed_question, routerbench_models

    raw = read_routerbench(path)
    models = routerbench_models(raw)
    missing = [m for m in models if f"{m}|total_cost" not in raw.columns]
    if missing:
        raise DataError(f"RouterBench data lacks the cost column(s) {[m + '|total_cost' for m in missing]}")
    out = []
    for file, g in raw.groupby("_file", sort=True):
        keep = ~g[models].isna().any(axis=1) & ~g[[f"{m}|total_cost" for m in models]].isna().any(axis=1)
        g = g[keep]
        out.append(Family(
            name=f"routerbench-{Path(file).stem}", prompts=[routed_question(p) for p in g["prompt"]],
            outcomes=g[models].to_numpy(dtype=np.float64),
            costs=g[[f"{m}|total_cost" for m in models]].to_numpy(dtype=np.float64), models=list(models),
            cost_unit="USD per query", note=f"{int((~keep).sum())} question(s) with a missing outcome dropped"))
    return out


def open7_families(path: str | Path | None = None, families: dict[str, tuple[str, ...]] | None = None) -> list[Family]:
    """The open7 files grouped into families; cost = parameter count (billions)."""
    from routers.data.preferences import read_open7

    raw = read_open7(path)
    models = [c for c in raw.columns if c not in ("question", "file")]
    unknown = [m for m in models if m not in OPEN7_PARAMS]
    if unknown:
        raise DataError(f"open7 model(s) {unknown} have no parameter count in OPEN7_PARAMS; add them there")
    out = []
    for name, prefixes in (families or OPEN7_FAMILIES).items():
        g = raw[raw["file"].map(lambda f: f.startswith(prefixes))]
        g = g[~g[models].isna().any(axis=1)]
        if g.empty:
            continue
        costs = np.broadcast_to(np.array([OPEN7_PARAMS[m] for m in models]), (len(g), len(models))).copy()
        out.append(Family(name=name, prompts=g["question"].astype(str).tolist(),
                          outcomes=g[models].to_numpy(dtype=np.float64), costs=costs, models=models,
                          cost_unit="billion parameters (no price recorded)",
                          note="files: " + ", ".join(sorted(g["file"].unique()))))
    return out


def load_families(sources: str | list[str]) -> list[Family]:
    """Families of the named sources (``routerbench``, ``open7``), in that order."""
    names = [s.strip() for s in sources.split(",")] if isinstance(sources, str) else list(sources)
    bad = [s for s in names if s not in SOURCES]
    if bad or not names:
        raise ConfigError(f"unknown N-way source(s) {bad or names}; known: {', '.join(SOURCES)}")
    out: list[Family] = []
    for s in names:
        out += routerbench_families() if s == "routerbench" else open7_families()
    return out
