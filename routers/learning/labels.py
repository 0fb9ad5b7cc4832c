"""Traffic labels as records and as training targets.

A stored record is canonical (``routers.data.records``) with ``model_a`` = the strong model and
``model_b`` = the weak model of the served pair, so P(strong better) = 1 − ``p_b_wins``:

- **judge** records: both answers judged in both orders (``routers.learning.judge``): 0 (strong
  wins), 0.5 (tie or disagreement), 1 (weak wins).
- **feedback** records: a user's verdict on the one answer they got, a score s in [0, 1] (thumbs up
  = 1, down = 0). One answer says half of a comparison: a good weak answer makes "the strong model
  was not needed" likelier, a bad one the opposite, and the reverse for a strong answer. The target
  is P(strong better) = 0.5 + (s − 0.5) / 2 for a strong answer and 0.5 − (s − 0.5) / 2 for a weak
  one: a soft label in [0.25, 0.75], half as sure as a judged pair, as it should be.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from routers.learning.judge import P_B_WINS, Verdict

SOURCE = "traffic"


def judge_record(prompt: str, strong: str, weak: str, verdict: Verdict, *, request_id: str, router: str,
                 p_strong: float | None, routed_model: str, now: float | None = None) -> dict[str, Any]:
    p = P_B_WINS[verdict]
    return {"prompt": prompt, "model_a": strong, "model_b": weak, "p_b_wins": p, "tie": verdict == "tie",
            "weight": 1.0, "source": SOURCE, "request_id": request_id, "router": router,
            "p_strong": p_strong, "time": time.time() if now is None else now, "kind": "judge",
            "routed_model": routed_model}


def feedback_target(score: float, answered_by_strong: bool) -> float:
    """P(strong better) from a verdict ``score`` in [0, 1] on one answer (module docstring)."""
    d = (float(score) - 0.5) / 2
    return 0.5 + d if answered_by_strong else 0.5 - d


def feedback_record(prompt: str, strong: str, weak: str, score: float, answered_by_strong: bool, *,
                    request_id: str, router: str, p_strong: float | None, routed_model: str,
                    now: float | None = None) -> dict[str, Any]:
    t = feedback_target(score, answered_by_strong)
    return {"prompt": prompt, "model_a": strong, "model_b": weak, "p_b_wins": 1.0 - t, "tie": False,
            "weight": 1.0, "source": SOURCE, "request_id": request_id, "router": router,
            "p_strong": p_strong, "time": time.time() if now is None else now, "kind": "feedback",
            "routed_model": routed_model}


def targets(df: pd.DataFrame) -> np.ndarray:
    """P(strong better) per stored record (``model_a`` is the strong model)."""
    return 1.0 - df["p_b_wins"].to_numpy(dtype=np.float64)


def pair_scores(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(strong, weak) quality scores whose APGR matches the targets: strong = t, weak = 1 − t
    (1/0 when strong won, 0.5/0.5 on a tie, 0/1 when weak won)."""
    t = np.asarray(t, dtype=np.float64)
    return t, 1.0 - t
