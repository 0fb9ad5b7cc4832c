"""Evaluation benchmarks: per-question prompt and the strong / weak model's score.

The paper's three benchmarks (strong = gpt-4-1106-preview, weak = Mixtral-8x7B-Instruct-v0.1) are
read from ``../shared/data/benchmarks`` (or ``$RAYROUTE_DATA/benchmarks``, or a directory given):

- MT Bench: 80 questions; the prompt routed on is the first turn (as RouteLLM's evaluation does);
  a model's score on a question is the mean of its two turns' GPT-4 grades (1-10).
- MMLU: 57 ``mmlu_<domain>.csv`` files, 14,042 rows; scores are correctness (0/1).
- GSM8K: 1,319 rows; scores are correctness (0/1).

Each comes with a shipped list of prompts found contaminated by the paper's authors; by default
they are dropped exactly as RouteLLM does (MMLU / GSM8K: rows whose prompt is listed; MT Bench:
questions whose first *or* second turn is listed). ``Benchmark.dropped`` says how many and why.

Users evaluate on their own data with ``load_outcomes_csv``: one row per question with the prompt,
the strong model's score and the weak model's score.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from routers.data.records import iter_jsonl
from routers.errors import DataError
from routers.paths import default_data_dir

STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"

#: Benchmark names in the paper's table order.
BENCHMARKS: tuple[str, ...] = ("mt_bench", "mmlu", "gsm8k")

MMLU_FILES = 57
MMLU_ROWS = 14_042
GSM8K_ROWS = 1_319
MT_BENCH_QUESTIONS = 80


@dataclass(frozen=True)
class Benchmark:
    """Per-question outcomes. ``strong[i]`` / ``weak[i]`` are the two models' scores on
    ``prompts[i]`` (correctness 0/1, or a grade); ``ids[i]`` identifies the question."""

    name: str
    prompts: list[str]
    strong: np.ndarray
    weak: np.ndarray
    ids: list[str]
    strong_model: str = STRONG_MODEL
    weak_model: str = WEAK_MODEL
    #: "accuracy" (0/1 scores, reported in %) or "grade" (reported as is)
    scale: str = "accuracy"
    #: reason -> number of questions dropped for it (e.g. {"shipped contaminated list": 5})
    dropped: dict[str, int] = field(default_factory=dict)
    #: number of questions before any drop
    n_original: int = 0

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if not (len(self.strong) == len(self.weak) == len(self.ids) == n):
            raise DataError(
                f"benchmark {self.name!r}: prompts ({n}), strong ({len(self.strong)}), weak "
                f"({len(self.weak)}) and ids ({len(self.ids)}) must have one length"
            )

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def strong_mean(self) -> float:
        return float(np.mean(self.strong))

    @property
    def weak_mean(self) -> float:
        return float(np.mean(self.weak))

    def display(self, value: float) -> float:
        """A mean score in the unit the paper reports (accuracy in %, grades as is)."""
        return 100.0 * value if self.scale == "accuracy" else value

    def subset(self, keep: np.ndarray | list[bool], reason: str) -> "Benchmark":
        """Keep the questions where ``keep`` is True; record the others as dropped for ``reason``."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self),):
            raise DataError(f"subset mask has shape {keep.shape}, benchmark {self.name!r} has {len(self)} questions")
        n_drop = int((~keep).sum())
        dropped = dict(self.dropped)
        if n_drop:
            dropped[reason] = dropped.get(reason, 0) + n_drop
        idx = np.flatnonzero(keep)
        return replace(
            self,
            prompts=[self.prompts[i] for i in idx],
            strong=self.strong[idx],
            weak=self.weak[idx],
            ids=[self.ids[i] for i in idx],
            dropped=dropped,
        )


def default_benchmark_dir() -> Path:
    """``$RAYROUTE_DATA/benchmarks`` if set, else ``../shared/data/benchmarks`` beside the repo."""
    return default_data_dir() / "benchmarks"


def _dir(data_dir: str | Path | None, sub: str) -> Path:
    base = Path(data_dir) if data_dir is not None else default_benchmark_dir()
    path = base / sub
    if not path.is_dir():
        raise DataError(
            f"benchmark directory {str(path)!r} does not exist; pass data_dir= (the folder holding "
            f"mt_bench/, mmlu/, gsm8k/) or set RAYROUTE_DATA to the shared data folder"
        )
    return path


def _file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"benchmark file {str(path)!r} does not exist")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(_file(path))]


def _need(row: dict, key: str, where: str):
    if key not in row:
        raise DataError(f"{where}: missing field {key!r} (fields present: {sorted(row)})")
    return row[key]


def load_contaminated(benchmark: str, data_dir: str | Path | None = None) -> list[dict]:
    """The shipped contaminated-prompt list of ``benchmark``: dicts with ``train_prompt``,
    ``eval_prompt``, ``train_idx``, ``eval_idx``."""
    if benchmark not in BENCHMARKS:
        raise DataError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    path = _dir(data_dir, benchmark) / "contaminated_prompts.jsonl"
    rows = _read_jsonl(path)
    for i, r in enumerate(rows):
        for key in ("train_prompt", "eval_prompt"):
            if not isinstance(_need(r, key, f"{path} row {i}"), str):
                raise DataError(f"{path} row {i}: {key!r} must be a string")
    return rows


def _bool_column(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    if col not in df.columns:
        raise DataError(f"{str(path)!r} has no column {col!r} (columns: {list(df.columns)})")
    s = df[col]
    if s.dtype == bool:
        return s.to_numpy(dtype=np.float64)
    mapped = s.astype(str).str.strip().str.lower().map({"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0,
                                                        "1.0": 1.0, "0.0": 0.0})
    if mapped.isna().any():
        bad = s[mapped.isna()].iloc[0]
        raise DataError(f"{str(path)!r} column {col!r} must be True/False, found {bad!r}")
    return mapped.to_numpy(dtype=np.float64)


def _correctness_frame(paths: list[Path], name: str) -> pd.DataFrame:
    frames = []
    for p in paths:
        try:
            df = pd.read_csv(_file(p), dtype={"prompt": str}, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot parse {str(p)!r}: {exc}") from exc
        if "prompt" not in df.columns:
            raise DataError(f"{str(p)!r} has no column 'prompt' (columns: {list(df.columns)})")
        out = pd.DataFrame({
            "prompt": df["prompt"].astype(str),
            "strong": _bool_column(df, STRONG_MODEL, p),
            "weak": _bool_column(df, WEAK_MODEL, p),
        })
        out["id"] = [f"{p.stem}:{i}" for i in range(len(df))]
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def _drop_listed(bench: Benchmark, listed: set[str]) -> Benchmark:
    keep = np.array([p not in listed for p in bench.prompts])
    return bench.subset(keep, "shipped contaminated list")


def load_mmlu(data_dir: str | Path | None = None, drop_contaminated: bool = True,
              domains: list[str] | None = None) -> Benchmark:
    """MMLU: 57 domains, 14,042 questions (14,037 after the shipped list). ``domains`` restricts
    to some domains (names as in ``mmlu_<domain>.csv``)."""
    base = _dir(data_dir, "mmlu")
    resp = base / "responses"
    if domains is None:
        paths = sorted(resp.glob("mmlu_*.csv"))
        if not paths:
            raise DataError(f"no mmlu_<domain>.csv files in {str(resp)!r}")
    else:
        paths = [resp / f"mmlu_{d}.csv" for d in domains]
    df = _correctness_frame(paths, "mmlu")
    bench = Benchmark("mmlu", df["prompt"].tolist(), df["strong"].to_numpy(), df["weak"].to_numpy(),
                      df["id"].tolist(), scale="accuracy", n_original=len(df))
    if drop_contaminated:
        bench = _drop_listed(bench, {r["eval_prompt"] for r in load_contaminated("mmlu", data_dir)})
    return bench


def load_gsm8k(data_dir: str | Path | None = None, drop_contaminated: bool = True) -> Benchmark:
    """GSM8K test: 1,319 questions (1,307 after the shipped list)."""
    base = _dir(data_dir, "gsm8k")
    df = _correctness_frame([base / "gsm8k_responses.csv"], "gsm8k")
    df["id"] = [f"gsm8k:{i}" for i in range(len(df))]
    bench = Benchmark("gsm8k", df["prompt"].tolist(), df["strong"].to_numpy(), df["weak"].to_numpy(),
                      df["id"].tolist(), scale="accuracy", n_original=len(df))
    if drop_contaminated:
        bench = _drop_listed(bench, {r["eval_prompt"] for r in load_contaminated("gsm8k", data_dir)})
    return bench


def load_mt_bench(data_dir: str | Path | None = None, drop_contaminated: bool = True) -> Benchmark:
    """MT Bench: 80 questions (72 after the shipped list). Prompt = first turn; score per model =
    mean of its turn-1 and turn-2 GPT-4 grades."""
    base = _dir(data_dir, "mt_bench")
    qpath, jpath = base / "question.jsonl", base / "judgements.jsonl"
    questions = _read_jsonl(qpath)
    grades: dict[tuple[int, str], dict[int, float]] = {}
    for i, r in enumerate(_read_jsonl(jpath)):
        where = f"{jpath} row {i}"
        qid, model, turn, score = (_need(r, k, where) for k in ("question_id", "model", "turn", "score"))
        if model not in (STRONG_MODEL, WEAK_MODEL):
            continue
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise DataError(f"{where}: score must be a number, got {score!r}") from None
        if score < 0:  # FastChat writes -1 when the judge's answer could not be parsed
            raise DataError(f"{where}: unparsed judgement (score {score}); regenerate it or drop the question")
        grades.setdefault((int(qid), model), {})[int(turn)] = score
    prompts, strong, weak, ids, turn2 = [], [], [], [], []
    for i, q in enumerate(questions):
        where = f"{qpath} row {i}"
        qid = int(_need(q, "question_id", where))
        turns = _need(q, "turns", where)
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise DataError(f"{where}: 'turns' must be a non-empty list of strings")
        row = []
        for model in (STRONG_MODEL, WEAK_MODEL):
            g = grades.get((qid, model), {})
            missing = [t for t in range(1, len(turns) + 1) if t not in g]
            if missing:
                raise DataError(f"{jpath}: no grade for question {qid}, model {model!r}, turn(s) {missing}")
            row.append(float(np.mean([g[t] for t in range(1, len(turns) + 1)])))
        prompts.append(turns[0])
        turn2.append(turns[1] if len(turns) > 1 else None)
        strong.append(row[0])
        weak.append(row[1])
        ids.append(f"mt_bench:{qid}")
    bench = Benchmark("mt_bench", prompts, np.array(strong), np.array(weak), ids, scale="grade",
                      n_original=len(prompts))
    if drop_contaminated:
        listed = {r["eval_prompt"] for r in load_contaminated("mt_bench", data_dir)}
        keep = np.array([not (p in listed or (t2 is not None and t2 in listed)) for p, t2 in zip(prompts, turn2)])
        bench = bench.subset(keep, "shipped contaminated list")
    return bench


def load_outcomes_csv(path: str | Path, prompt_col: str = "prompt", strong_col: str = "strong",
                      weak_col: str = "weak", name: str | None = None, scale: str | None = None) -> Benchmark:
    """A user's own benchmark: a CSV with one row per question, the prompt and the strong and weak
    model's numeric score (correctness 0/1 or any grade; higher is better). ``scale`` defaults to
    "accuracy" when every score is 0/1, else "grade"."""
    path = Path(path)
    try:
        df = pd.read_csv(_file(path), dtype={prompt_col: str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse outcomes CSV {str(path)!r}: {exc}") from exc
    for col in (prompt_col, strong_col, weak_col):
        if col not in df.columns:
            raise DataError(
                f"outcomes CSV {str(path)!r} has no column {col!r} (columns: {list(df.columns)}); "
                f"it needs a prompt, a strong-model score and a weak-model score per row"
            )
    if df.empty:
        raise DataError(f"outcomes CSV {str(path)!r} has no rows")
    scores = {}
    for col in (strong_col, weak_col):
        s = df[col]
        if s.dtype == bool:
            vals = s.astype(float)
        else:
            low = s.astype(str).str.strip().str.lower()
            vals = pd.to_numeric(low.replace({"true": "1", "false": "0"}), errors="coerce")
        if vals.isna().any():
            i = int(np.flatnonzero(vals.isna().to_numpy())[0])
            raise DataError(f"outcomes CSV {str(path)!r} row {i + 2}: column {col!r} must be a number, got {s.iloc[i]!r}")
        scores[col] = vals.to_numpy(dtype=np.float64)
    prompts = df[prompt_col].astype(str).tolist()
    for i, p in enumerate(prompts):
        if not p.strip():
            raise DataError(f"outcomes CSV {str(path)!r} row {i + 2}: empty prompt")
    strong, weak = scores[strong_col], scores[weak_col]
    if scale is None:
        scale = "accuracy" if np.isin(np.concatenate([strong, weak]), [0.0, 1.0]).all() else "grade"
    return Benchmark(name or path.stem, prompts, strong, weak, [f"{path.stem}:{i}" for i in range(len(df))],
                     strong_model=strong_col, weak_model=weak_col, scale=scale, n_original=len(df))


def load_benchmark(name_or_path: str | Path, data_dir: str | Path | None = None,
                   drop_contaminated: bool = True) -> Benchmark:
    """``mt_bench`` / ``mmlu`` / ``gsm8k`` (``mt-bench`` accepted), or a path to an outcomes CSV."""
    key = str(name_or_path).replace("-", "_").lower()
    if key == "mt_bench":
        return load_mt_bench(data_dir, drop_contaminated)
    if key == "mmlu":
        return load_mmlu(data_dir, drop_contaminated)
    if key == "gsm8k":
        return load_gsm8k(data_dir, drop_contaminated)
    path = Path(name_or_path)
    if path.suffix.lower() == ".csv":
        return load_outcomes_csv(path)
    raise DataError(
        f"unknown benchmark {str(name_or_path)!r}: use one of {', '.join(BENCHMARKS)} or a path to a "
        f"CSV with columns prompt, strong, weak"
    )
