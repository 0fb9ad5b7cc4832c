"""Threshold calibration: the cost threshold α that sends a chosen fraction of traffic to the
strong model, and the ready model string ``router-<name>-<α>``.

``rayroute calibrate --router mf --strong-fraction 0.5 [--prompts FILE]``

The prompt sample defaults to the training prompts (the unique prompts of the default training
mix), as RouteLLM calibrates on its training queries; ``--prompts`` takes a .txt (one per line),
.jsonl (field ``--field``, default ``prompt``, else ``instruction``) or .csv (column ``--field``).

Ties: the realised strong fraction is ``mean(strong_mask(scores, α))`` (the one threshold rule of
``routers.base``), and it can only take values at boundaries between distinct scores. We choose,
among all realisable fractions, the one nearest the target, and print α as the shortest decimal
that lies strictly between that boundary's score and the next lower distinct score, so the
printed α reproduces exactly the calibrated fraction when parsed back. When a tie group is so
large that no realisable fraction is within ``tolerance`` of the target, ``calibrate`` says so.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routers.base import strong_mask
from routers.data.records import iter_jsonl
from routers.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    router: str
    target: float
    threshold: float
    realised: float
    n_prompts: int
    model: str

    def to_dict(self) -> dict:
        return {"router": self.router, "target_strong_fraction": self.target, "threshold": self.threshold,
                "realised_strong_fraction": self.realised, "n_prompts": self.n_prompts, "model": self.model}


def _short_between(lo: float, hi: float) -> float:
    """The shortest decimal x with lo < x <= hi (both in [0, 1])."""
    for digits in range(1, 18):
        for x in (round(hi, digits), round((lo + hi) / 2, digits)):
            if lo < x <= hi:
                return float(x)
    return float(hi)


def threshold_for_fraction(scores: Sequence[float] | np.ndarray, strong_fraction: float) -> float:
    """α in [0, 1] whose realised ``mean(strong_mask(scores, α))`` is the realisable fraction
    nearest ``strong_fraction`` (ties between candidates go to the smaller strong fraction)."""
    try:
        f = float(strong_fraction)
    except (TypeError, ValueError):
        raise ConfigError(f"strong fraction must be a number in [0, 1], got {strong_fraction!r}") from None
    if not 0.0 <= f <= 1.0:
        raise ConfigError(f"strong fraction must be in [0, 1], got {strong_fraction!r}")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ConfigError("calibration needs a non-empty 1-D array of scores")
    if np.isnan(s).any() or (s < 0).any() or (s > 1).any():
        raise ConfigError("router scores must be in [0, 1] to calibrate a threshold")
    uniq = np.unique(s)[::-1]  # distinct scores, high to low
    n = len(s)
    # realised fraction when α sits in (uniq[i+1], uniq[i]]: share of scores >= uniq[i]
    counts = np.searchsorted(np.sort(s), uniq, side="left")
    fracs = (n - counts) / n
    # candidate "nothing strong": α above the max (only possible when max < 1)
    cands = [(0.0, None)] if uniq[0] < 1.0 else []
    cands += [(float(fr), i) for i, fr in enumerate(fracs)]
    frac, idx = min(cands, key=lambda c: (abs(c[0] - f), c[0]))
    if idx is None:  # nothing strong: α above the highest score
        return _short_between(float(uniq[0]), 1.0)
    hi = float(uniq[idx])
    lo = float(uniq[idx + 1]) if idx + 1 < len(uniq) else -1e-12
    return abs(_short_between(lo, hi))


def read_prompts(path: str | Path, field: str = "prompt") -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompts file {str(path)!r} does not exist")
    out: list[str] = []
    if path.suffix == ".jsonl":
        for n, obj in iter_jsonl(path):
            value = obj.get(field, obj.get("instruction")) if isinstance(obj, dict) else None
            if not isinstance(value, str):
                raise DataError(f"{path}:{n}: no string field {field!r} (or 'instruction')")
            out.append(value)
    elif path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if field not in (reader.fieldnames or []):
                raise DataError(f"{path}: no column {field!r} (columns: {reader.fieldnames})")
            out = [row[field] for row in reader if row[field] and row[field].strip()]
    else:
        out = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not out:
        raise DataError(f"prompts file {str(path)!r} has no prompts")
    return out


def training_prompts(mix=None) -> list[str]:
    """The default calibration sample: unique prompts of the training mix."""
    from routers.training.data import load_mix

    df = load_mix(mix)
    return list(dict.fromkeys(df["prompt"].tolist()))


def calibrate(router, strong_fraction: float, prompts: Sequence[str] | None = None, mix=None,
              tolerance: float = 0.01, progress: bool = False) -> Calibration:
    """Score the sample with ``router`` (a Router or a name / checkpoint path) and calibrate α."""
    from routers.registry import load_router

    name = router if isinstance(router, str) else getattr(router, "name", "router")
    r = load_router(router) if isinstance(router, str) else router
    prompts = list(prompts) if prompts is not None else training_prompts(mix)
    if not prompts:
        raise DataError("calibration needs at least one prompt")
    batch = 512
    starts = range(0, len(prompts), batch)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"score {name}", unit="batch")
    scores = np.concatenate([np.asarray(r.score(prompts[i:i + batch]), dtype=np.float64) for i in starts])
    alpha = threshold_for_fraction(scores, strong_fraction)
    realised = float(np.mean(strong_mask(scores, alpha)))
    if abs(realised - strong_fraction) > tolerance:
        log.warning("router %s: tied scores allow %.4f strong calls at best on this sample (target %.4f)",
                    name, realised, strong_fraction)
    alias = Path(name).name if not isinstance(router, str) or Path(name).is_dir() else name
    return Calibration(str(name), float(strong_fraction), alpha, realised, len(prompts), f"router-{alias}-{alpha}")
