"""Length-controlled judge labels for the served pair, from AlpacaEval's GPT-4-judge preferences.

Why: GPT-4 judges prefer longer answers. On open-ended prompts a long answer wins whether or not
the strong model is needed, so judge labels may teach a router "open-ended prompt → strong", while
the strong/weak gap that golden outcomes show is on maths, reasoning and code. AlpacaEval's
length-controlled win rate removes that bias by regressing the preference on the length difference
and dropping the length term; this module does the same per instruction.

The model (one logistic GLM over every judgment against the ``gpt4_1106_preview`` reference, soft
labels, L2):

    logit P(model m beats the reference on x) = θ_m + γ_x + β · tanh(Δ_{m,x} / σ)

with Δ the answer-length difference in characters (m's minus the reference's), σ its standard
deviation over all judgments, θ_m a model effect and γ_x an instruction effect. AlpacaEval fits a
length slope per model; one shared β is kept here (77 models share 805 instructions, so a slope per
model would mostly fit noise). Per instruction x and the served weak model w it gives:

- ``raw``: the judged P(reference better than w), mean over the annotators (what a judge-label
  router trains on today);
- ``raw_lc``: ``raw`` with the fitted length effect of *this* pair's answers removed, clipped to [0, 1];
- ``glm``: 1 − σ(θ_w + γ_x + β · tanh(Δ_{w,x} / σ)), the fit with length;
- ``glm_lc``: 1 − σ(θ_w + γ_x), the fit without length: how much every judged model loses to the
  reference on x, length controlled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from routers.data.preferences import read_alpaca_judgments
from routers.errors import DataError
from routers.paths import default_data_dir

REFERENCE = "gpt4_1106_preview"
WEAK = "Mixtral-8x7B-Instruct-v0.1"
LABELS = ("raw", "raw_lc", "glm", "glm_lc")


@dataclass(frozen=True)
class JudgeLabels:
    """Per instruction: the prompt, each label kind in [0, 1] (P(reference better than ``weak``)),
    and the answer-length difference (reference minus weak, characters)."""

    prompts: list[str]
    labels: dict[str, np.ndarray]
    length_gap_chars: np.ndarray
    beta: float
    sigma_chars: float
    n_judgments: int
    n_models: int


def _lengths(path: Path) -> pd.DataFrame:
    f = path / "output_lengths.csv"
    if not f.is_file():
        raise DataError(f"{f}: not found; the AlpacaEval folder needs output_lengths.csv for length control")
    return pd.read_csv(f, usecols=["instruction_id", "model", "output_chars"])


def length_controlled_labels(path: str | Path | None = None, weak: str = WEAK, reference: str = REFERENCE,
                             c: float = 1.0) -> JudgeLabels:
    """Fit the GLM above (``c``: inverse L2 strength, sklearn's) and return the four label kinds."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    d = Path(path) if path is not None else default_data_dir() / "preferences" / "alpaca_eval"
    ins, jud = read_alpaca_judgments(d)
    jud = jud[(jud["model_1"] == reference) & (jud["model_2"] != reference)].copy()
    pref = pd.to_numeric(jud["preference"], errors="coerce")
    jud["y"] = np.where((pref == 0.0) | (pref == 1.5), 0.5, pref - 1.0)  # P(model_2 better); 0.0 is a draw
    lengths = _lengths(d).set_index(["instruction_id", "model"])["output_chars"]
    ref_len = jud["instruction_id"].map(lengths.xs(reference, level="model"))
    own_len = pd.Series([lengths.get((i, m), np.nan) for i, m in zip(jud["instruction_id"], jud["model_2"])],
                        index=jud.index)
    jud["gap"] = own_len - ref_len
    jud = jud.dropna(subset=["y", "gap"])
    if weak not in set(jud["model_2"]):
        raise DataError(f"no judgments of {weak!r} against {reference!r} with answer lengths in {d}")
    sigma = float(jud["gap"].std()) or 1.0
    models = sorted(jud["model_2"].unique())
    ids = sorted(jud["instruction_id"].unique())
    m_idx = jud["model_2"].map({m: i for i, m in enumerate(models)}).to_numpy()
    x_idx = jud["instruction_id"].map({x: i for i, x in enumerate(ids)}).to_numpy()
    n = len(jud)
    onehot = lambda idx, k: csr_matrix((np.ones(n), (np.arange(n), idx)), shape=(n, k))  # noqa: E731
    t = np.tanh(jud["gap"].to_numpy(float) / sigma)
    design = hstack([onehot(m_idx, len(models)), onehot(x_idx, len(ids)), csr_matrix(t[:, None])]).tocsr()
    y = jud["y"].to_numpy(float)
    # soft labels: each judgment as a win with weight y and a loss with weight 1 − y
    fit = LogisticRegression(C=c, max_iter=2000).fit(
        _vstack(design), np.r_[np.ones(n), np.zeros(n)], sample_weight=np.r_[y, 1 - y])
    coef = fit.coef_.ravel()
    theta, gamma, beta = coef[:len(models)], coef[len(models):-1], float(coef[-1])

    w = jud[jud["model_2"] == weak].groupby("instruction_id").agg(y=("y", "mean"), gap=("gap", "first"))
    text = dict(zip(ins["id"], ins["instruction"]))
    xi = np.array([ids.index(i) for i in w.index])
    base = fit.intercept_[0] + theta[models.index(weak)] + gamma[xi]
    length_term = beta * np.tanh(w["gap"].to_numpy(float) / sigma)
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    raw = 1.0 - w["y"].to_numpy(float)
    labels = {
        "raw": raw,
        # the judged outcome minus what the fit says the length difference added to the weak side
        "raw_lc": np.clip(raw + (sig(base + length_term) - sig(base)), 0.0, 1.0),
        "glm": 1.0 - sig(base + length_term),
        "glm_lc": 1.0 - sig(base),
    }
    return JudgeLabels([str(text[i]) for i in w.index], labels, -w["gap"].to_numpy(float), beta, sigma,
                       int(n), len(models))


def _vstack(design):
    from scipy.sparse import vstack

    return vstack([design, design]).tocsr()
