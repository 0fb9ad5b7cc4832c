"""Auxiliary per-question targets that say how *hard* a prompt is, learned from data other than the
served pair's outcomes, for the ``linear_aux`` router's extra features.

- ``difficulty``: the mean correctness over many models of one question: open7's seven 7-8B
  models (English sets only) and RouterBench's eleven models on ARC-C and MBPP. A prompt most
  models fail is one a strong model is more likely to be needed for; this transfers to chat
  prompts better than the pair's own outcomes do (docs/results: MT Bench leave-one-out).
- ``steps``: log(1 + the number of lines of the reference solution) of GSM8K *train* questions:
  how much reasoning a prompt asks for.

Why ``load_aux`` adds a copy of every row with a claim of difficulty (``DIFFICULTY_CLAIMS``): a
regressor of "how hard" on the prompt text also learns that words like "hard" or "expert" mean
hard, so a user could buy the strong model by saying so (``routers.evaluation.manipulation``). The
copies carry the same target, which teaches the regressor that such claims add no difficulty. The
claims are worded apart from the manipulation measurement's texts, which are never trained on.

Each row carries a *family* (``open7:<set>``, ``routerbench:<set>``, ``gsm8k:train``). A family
that is another split of an evaluation benchmark is listed in ``BENCHMARK_FAMILIES`` and never
used when that benchmark is the evaluation target (``routers.evaluation.protocol``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routers.errors import ConfigError, DataError

AUX_KINDS: tuple[str, ...] = ("difficulty", "steps")

#: evaluation benchmark -> aux families drawn from that benchmark (another split): excluded when it
#: is the target, so leave-one-benchmark-out never sees the benchmark in any form
BENCHMARK_FAMILIES: dict[str, tuple[str, ...]] = {
    "gsm8k": ("open7:gsm8k-train", "gsm8k:train"),
    "arc_challenge": ("open7:arc_challenge_train", "open7:arc_challenge_test", "routerbench:arc_challenge"),
    "mbpp": ("open7:mbpp", "routerbench:mbpp"),
}

#: open7 sets not used: Chinese (C-Eval, CMMLU; the English embedders see little of them, and
#: CMMLU is MMLU's sibling)
OPEN7_SKIP = ("ceval", "cmmlu_test", "cmmlu_train")


#: claims of difficulty or importance that carry no task content, for the augmented copies
#: (position, text). Worded apart from ``routers.evaluation.manipulation.MANIPULATIONS``.
DIFFICULTY_CLAIMS: tuple[tuple[str, str], ...] = (
    ("suffix", " This one is really tough."),
    ("suffix", " I think this is a difficult problem."),
    ("suffix", " Be careful: it is trickier than it looks."),
    ("suffix", " It needs expert knowledge."),
    ("suffix", " This is graduate-level material."),
    ("suffix", " Use your strongest reasoning here."),
    ("suffix", " Getting this right matters a lot to me."),
    ("suffix", " (challenging)"),
    ("suffix", "\n\nThis is a hard one, take your time."),
    ("suffix", " Only a genius could solve this."),
    ("suffix", " Please route this to your best model."),
    ("suffix", " Difficulty: very high."),
    ("prefix", "Difficult question: "),
    ("prefix", "Challenge problem. "),
    ("prefix", "You are an expert. "),
    ("prefix", "I need a careful, expert answer. "),
    ("prefix", "Tough one: "),
    ("prefix", "Advanced: "),
    ("prefix", "This is hard, please reason carefully. "),
    ("prefix", "High-stakes task! "),
)


@dataclass(frozen=True)
class AuxSet:
    """Prompts with one auxiliary target each, the family each row comes from and the question it
    asks (``questions``: an id shared by a question and its claim-augmented copies; default: one per
    row), so that removing a question removes its copies too (``routers.models.linear_aux.fit_aux``)."""

    kind: str
    prompts: list[str]
    values: np.ndarray
    families: np.ndarray
    questions: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.questions is None:
            object.__setattr__(self, "questions", np.arange(len(self.prompts)))
        if not (len(self.prompts) == len(self.values) == len(self.families) == len(self.questions)):
            raise DataError(f"aux set {self.kind}: {len(self.prompts)} prompts, {len(self.values)} values, "
                            f"{len(self.families)} families, {len(self.questions)} question ids")

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, keep: np.ndarray) -> "AuxSet":
        idx = np.flatnonzero(np.asarray(keep, dtype=bool))
        return AuxSet(self.kind, [self.prompts[i] for i in idx], self.values[idx], self.families[idx],
                      self.questions[idx])

    def without(self, benchmark: str | None) -> "AuxSet":
        """The rows not drawn from ``benchmark`` (``BENCHMARK_FAMILIES``)."""
        return self.subset(~np.isin(self.families, BENCHMARK_FAMILIES.get(benchmark or "", ())))


def _data_dir(data_dir: str | Path | None) -> Path:
    from routers.paths import default_data_dir

    return Path(data_dir) if data_dir else default_data_dir()


def load_difficulty(data_dir: str | Path | None = None) -> AuxSet:
    """Mean correctness over models per question (open7 English sets + RouterBench ARC-C / MBPP)."""
    from routers.data.golden import ROUTERBENCH_FILES
    from routers.data.preferences import read_routerbench, routed_question

    root = _data_dir(data_dir) / "preferences"
    rows: list[tuple[str, str, float]] = []
    files = sorted((root / "open7").glob("*.jsonl"))
    if not files:
        raise DataError(f"no open7 files under {str(root / 'open7')!r}; pass the shared data folder with --data-dir")
    for path in files:
        if path.stem in OPEN7_SKIP:
            continue
        with path.open() as fh:
            for n, line in enumerate(fh, 1):
                try:
                    rec = json.loads(line)
                    rows.append((f"open7:{path.stem}", rec["question"], float(np.mean(list(rec["scores"].values())))))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise DataError(f"{path}:{n}: expected {{'question', 'scores'}}: {exc}") from exc
    for name, fname in ROUTERBENCH_FILES.items():
        raw = read_routerbench(root / "routerbench" / fname)
        models = [c for c in raw.columns if f"{c}|total_cost" in raw.columns]  # the per-model 0/1 columns
        mean = raw[models].astype(float).mean(axis=1, skipna=True).to_numpy()
        rows += [(f"routerbench:{name}", routed_question(p), float(v)) for p, v in zip(raw["prompt"], mean)
                 if np.isfinite(v)]
    fam, prompts, vals = zip(*rows)
    return AuxSet("difficulty", list(prompts), np.asarray(vals, dtype=np.float64), np.asarray(fam))


def solution_steps(answer: str) -> int:
    """Non-empty lines of a GSM8K reference solution before its ``#### N`` line."""
    return sum(1 for line in answer.split("####")[0].splitlines() if line.strip())


def load_reasoning_steps(data_dir: str | Path | None = None) -> AuxSet:
    """log(1 + solution lines) of GSM8K train questions."""
    path = _data_dir(data_dir) / "benchmarks" / "gsm8k" / "train.jsonl"
    if not path.is_file():
        raise DataError(f"{str(path)!r} is missing; pass the shared data folder with --data-dir")
    prompts, vals = [], []
    with path.open() as fh:
        for n, line in enumerate(fh, 1):
            try:
                rec = json.loads(line)
                prompts.append(rec["question"])
                vals.append(np.log1p(solution_steps(rec["answer"])))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{n}: expected {{'question', 'answer'}}: {exc}") from exc
    return AuxSet("steps", prompts, np.asarray(vals), np.full(len(prompts), "gsm8k:train"))


def with_claims(data: AuxSet, seed: int = 0) -> AuxSet:
    """``data`` plus one copy of every row with a random ``DIFFICULTY_CLAIMS`` text added (same
    target, family and question id)."""
    from routers.evaluation.manipulation import apply

    pick = np.random.default_rng(seed).integers(0, len(DIFFICULTY_CLAIMS), len(data))
    claimed = [apply(p, *DIFFICULTY_CLAIMS[k]) for p, k in zip(data.prompts, pick)]
    return AuxSet(data.kind, data.prompts + claimed, np.tile(data.values, 2), np.tile(data.families, 2),
                  np.tile(data.questions, 2))


def load_aux(kind: str, data_dir: str | Path | None = None, claims: bool = True) -> AuxSet:
    """One aux set; with ``claims`` (the default) plus its claim-augmented copies (module docstring)."""
    if kind == "difficulty":
        data = load_difficulty(data_dir)
    elif kind == "steps":
        data = load_reasoning_steps(data_dir)
    else:
        raise ConfigError(f"unknown aux target {kind!r}; known: {', '.join(AUX_KINDS)}")
    return with_claims(data) if claims else data
