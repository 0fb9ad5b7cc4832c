"""What every train command shares: seeding, the result record, the summary line, progress bars,
and the training data entry points (with a fallback while ``routers.training.data`` is absent).

Contract of a trainer: a plain function ``train_x(..., out_dir, seed, ...) -> TrainResult`` that
writes a checkpoint directory ``load_router(out_dir)`` reads, prints one summary line, and is
deterministic for a fixed seed on CPU.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from routers.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed python, numpy and (if imported) torch, so a CPU run is reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency, sw_ranking does not need it
        pass


def progress(iterable, desc: str, total: int | None = None, enabled: bool | None = None):
    """A tqdm bar on stderr, disabled when ``RAYROUTE_NO_PROGRESS`` is set or ``enabled`` is False."""
    if enabled is None:
        enabled = not os.environ.get("RAYROUTE_NO_PROGRESS")
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False)


@dataclass
class TrainResult:
    """What a trainer returns: the router name, the checkpoint it wrote, metrics and wall time."""

    router: str
    checkpoint: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def summary_line(self) -> str:
        parts = [f"[train {self.router}]"]
        for k, v in self.metrics.items():
            parts.append(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}")
        parts.append(f"time={self.seconds:.1f}s")
        parts.append(f"checkpoint={self.checkpoint}")
        return " ".join(parts)


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


# --- data ----------------------------------------------------------------------------------------


def split_by_prompt(prompts: pd.Series, val_fraction: float = 0.05, seed: int = 0) -> np.ndarray:
    """Boolean mask of validation rows: a seeded random ``val_fraction`` of the *distinct* prompts,
    so no prompt is in both splits (rows of one prompt stay together)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    uniq = np.array(sorted(pd.unique(prompts)), dtype=object)  # sorted: same split as train_val_split
    rng = np.random.default_rng(seed)
    n_val = int(round(len(uniq) * val_fraction))
    if val_fraction > 0 and len(uniq) >= 2:
        n_val = min(max(n_val, 1), len(uniq) - 1)
    val = set(rng.permutation(len(uniq))[:n_val].tolist())
    val_prompts = {uniq[i] for i in val}
    return prompts.isin(val_prompts).to_numpy()


def load_preferences(mix: Any = None) -> pd.DataFrame:
    """The canonical preference frame of a training mix (``routers.training.data.load_mix``).

    ``mix`` may be None (the default mix), a mix object or a path to a mix file, or an already
    loaded DataFrame (tests), which is validated and returned.
    """
    from routers.data.records import validate_frame

    if isinstance(mix, pd.DataFrame):
        return validate_frame(mix, where="training data")
    try:
        from routers.training import data as tdata
    except ImportError as exc:
        raise DataError(
            "routers.training.data is not available, so no training mix can be loaded; pass a DataFrame"
        ) from exc
    if isinstance(mix, (str, Path)) and str(mix).endswith(".jsonl"):
        # one file of canonical records (routers.data.preferences.load_jsonl) is a mix of one source
        from routers.data.preferences import load_jsonl

        return validate_frame(load_jsonl(mix), where=str(mix))
    return tdata.load_mix(mix if mix is not None else tdata.default_mix())


def tier_table(df: pd.DataFrame):
    """Tiers of the models in ``df`` (``routers.data.tiers.compute_tiers``, 10 tiers as the paper)."""
    from routers.data.tiers import compute_tiers

    n_models = len(set(df["model_a"]) | set(df["model_b"]))
    return compute_tiers(df, n_tiers=min(10, n_models))  # the paper's 10, or fewer for tiny data


def tier_groups(tiers, strong_tiers=(0, 1), weak_tiers=(2,)) -> dict[str, list[str]]:
    """name -> models: ``strong`` (tiers 0-1), ``weak`` (tier 2), and ``tier<k>`` for every tier
    (the paper's classes, section 4.1), for routers that score a tier instead of one model."""
    groups: dict[str, list[str]] = {"strong": list(tiers.strong_models(strong_tiers)),
                                    "weak": list(tiers.weak_models(weak_tiers))}
    for k in range(tiers.n_tiers):
        groups[f"tier{k}"] = list(tiers.models_in(k))
    return {name: members for name, members in groups.items() if members}
