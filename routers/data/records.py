"""The canonical preference record, shared by every loader and trainer.

One row = one comparison of two models' answers to one prompt:

- ``prompt``: the text routed on (for conversations: the last user turn, see
  ``routers.base.routing_text``);
- ``model_a``, ``model_b``: canonical model names (``routers.data.aliases.canonical``);
- ``p_b_wins``: probability that model_b's answer is better: 1.0 b wins, 0.0 a wins, 0.5 tie,
  anything in between for soft labels (weighted annotators, score differences);
- ``tie``: True when the comparison was a tie (then ``p_b_wins`` is 0.5);
- ``weight``: a non-negative sample weight (source mix weights multiply it);
- ``source``: where the row came from (``alpaca_eval``, ``routerbench``, ``arena``, …).

In memory a set of records is a pandas DataFrame with exactly these columns; on disk, the generic
format is JSONL with one object per line carrying the same fields (``weight``/``source``/``tie``
optional).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from routers.errors import DataError

COLUMNS = ["prompt", "model_a", "model_b", "p_b_wins", "tie", "weight", "source"]

#: The paper prunes prompts shorter than 16 characters (section 5).
MIN_PROMPT_CHARS = 16


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
        COLUMNS, [str, str, str, "float64", bool, "float64", str])})


def validate_frame(df: pd.DataFrame, where: str = "preference data") -> pd.DataFrame:
    """Check the canonical schema and value ranges; fill optional columns; return a clean copy."""
    df = df.copy()
    if "tie" not in df:
        df["tie"] = False
    if "weight" not in df:
        df["weight"] = 1.0
    if "source" not in df:
        df["source"] = "unknown"
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}; expected {COLUMNS}")
    df = df[COLUMNS]
    p = pd.to_numeric(df["p_b_wins"], errors="coerce")
    bad = p.isna() | (p < 0) | (p > 1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where}: row {i} has p_b_wins={df['p_b_wins'].iloc[i]!r}; must be a number in [0, 1]")
    w = pd.to_numeric(df["weight"], errors="coerce")
    badw = w.isna() | (w < 0)
    if badw.any():
        i = int(np.flatnonzero(badw.to_numpy())[0])
        raise DataError(f"{where}: row {i} has weight={df['weight'].iloc[i]!r}; must be a number >= 0")
    for col in ("prompt", "model_a", "model_b"):
        nonstr = ~df[col].map(lambda v: isinstance(v, str))
        if nonstr.any():
            i = int(np.flatnonzero(nonstr.to_numpy())[0])
            raise DataError(f"{where}: row {i} field {col!r} must be a string, got {df[col].iloc[i]!r}")
    df["p_b_wins"] = p.astype("float64")
    df["weight"] = w.astype("float64")
    df["tie"] = df["tie"].astype(bool)
    df["source"] = df["source"].astype(str)
    return df.reset_index(drop=True)


def prune_short(df: pd.DataFrame, min_chars: int = MIN_PROMPT_CHARS) -> pd.DataFrame:
    """Drop rows whose prompt (stripped) is shorter than ``min_chars`` characters (paper, section 5)."""
    keep = df["prompt"].str.strip().str.len() >= min_chars
    return df[keep].reset_index(drop=True)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for each non-blank line; DataError names the file and line."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: invalid JSON ({exc})") from exc
