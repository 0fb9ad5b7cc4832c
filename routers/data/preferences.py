"""Loaders that turn each preference source into the canonical frame (``records.COLUMNS``).

Every ``load_*`` returns a validated frame with canonical model names (``aliases.canonical``) and
prompts shorter than 16 characters pruned (paper, section 5). Every ``read_*`` returns the raw
rows exactly as counted in ``../shared/data/README.md`` (tests check those counts). Any missing
file or malformed field raises ``DataError`` naming the path and the field.

How raw rows become preference rows:

- AlpacaEval (``judgments.csv``, 105,381 judgments): one row per judgment, ``model_a`` = model_1,
  ``model_b`` = model_2, P(b wins) = preference - 1; 1.5 and 0.0 (AlpacaEval's own draw code) are
  ties. Self-comparisons (gpt4_1106_preview vs itself, 1,610 rows, all 1.5) carry no preference
  and are dropped, as is AlpacaEval's ``example`` entry (the demo outputs of its repository, not a
  model). Several annotators judged the same pair: each judgment is kept as its own row.
- RouterBench (1,039 + 299 prompts, 11 models): every unordered pair of models with a known
  correctness on a prompt is one row: a preference where exactly one was correct, a tie otherwise
  (55 rows per fully labelled prompt). The routed prompt is the question only, i.e. the last
  blank-line-separated block: the few-shot prefix is the same for every ARC prompt, so keeping it
  would make all prompts look alike to an embedder and is not what a user would send.
  ``full_prompt=True`` keeps the whole text.
- open7 (12,650 questions, 7 models): every unordered pair (21 per question): different scores ->
  a hard preference for the higher score with weight |difference| (a 0.9 vs 0.1 split counts
  more than 0.55 vs 0.45); equal scores -> a tie with weight 1. ``soft=True`` instead gives the
  soft label P(b wins) = 0.5 + (s_b - s_a) / 2 with weight 1.
- Arena (lmsys-arena-human-preference-55k): one row per battle, the prompt is the last user turn.
"""

from __future__ import annotations

import ast
import json
import os
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from routers.data.aliases import canonical
from routers.data.records import COLUMNS, empty_frame, iter_jsonl, prune_short, validate_frame
from routers.errors import DataError
from routers.paths import default_data_dir

#: source name -> loader; ``load_source`` dispatches on it (filled at the bottom of the module).
SOURCES: dict[str, object] = {}


def _resolve(path, default_rel: str) -> Path:
    p = Path(path) if path is not None else default_data_dir() / default_rel
    if not p.exists():
        raise DataError(f"{p}: not found; pass the path explicitly or set RAYROUTE_DATA to the data dir")
    return p


def _show(value) -> str:
    """repr of a cell value for messages (numpy scalars shown as plain Python values)."""
    return repr(value.item() if hasattr(value, "item") else value)


def _require_columns(df: pd.DataFrame, cols, where) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; found {list(df.columns)}")


def _finish(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Canonical names, schema check, short-prompt pruning: the last step of every loader."""
    if df.empty:
        return empty_frame()
    df = df.copy()
    names = pd.unique(pd.concat([df["model_a"], df["model_b"]]))
    mapping = {n: canonical(n) for n in names}  # map unique names once, not per row
    df["model_a"] = df["model_a"].map(mapping)
    df["model_b"] = df["model_b"].map(mapping)
    return prune_short(validate_frame(df, where=where))


# --- AlpacaEval ------------------------------------------------------------------------------------

#: AlpacaEval result names that are not models (the repository's format demo).
ALPACA_NOT_MODELS = frozenset({"example"})


def read_alpaca_judgments(path=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw ``(instructions, judgments)`` from an AlpacaEval directory, checked but not expanded."""
    d = _resolve(path, "preferences/alpaca_eval")
    ins_path, jud_path = d / "instructions.jsonl", d / "judgments.csv"
    for p in (ins_path, jud_path):
        if not p.is_file():
            raise DataError(f"{p}: not found; an AlpacaEval dir holds instructions.jsonl and judgments.csv")
    try:
        ins = pd.read_json(ins_path, lines=True)
        jud = pd.read_csv(jud_path)
    except ValueError as exc:
        raise DataError(f"{d}: unreadable AlpacaEval file: {exc}") from exc
    _require_columns(ins, ["id", "instruction"], ins_path)
    _require_columns(jud, ["instruction_id", "model_1", "model_2", "preference"], jud_path)
    return ins, jud


def load_alpaca_eval(path=None) -> pd.DataFrame:
    """AlpacaEval GPT-4-judge preferences as canonical rows (see the module docstring)."""
    ins, jud = read_alpaca_judgments(path)
    where = Path(path) if path is not None else default_data_dir() / "preferences/alpaca_eval"
    pref = pd.to_numeric(jud["preference"], errors="coerce")
    bad = pref.isna() | ~(((pref >= 1.0) & (pref <= 2.0)) | (pref == 0.0))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where}/judgments.csv: row {i} preference={_show(jud['preference'].iloc[i])}; "
                        "AlpacaEval preferences are 0.0 (draw) or in [1.0, 2.0]")
    text = dict(zip(ins["id"], ins["instruction"]))
    prompt = jud["instruction_id"].map(text)
    if prompt.isna().any():
        i = int(np.flatnonzero(prompt.isna().to_numpy())[0])
        raise DataError(f"{where}/judgments.csv: row {i} instruction_id={_show(jud['instruction_id'].iloc[i])} "
                        "is not an id in instructions.jsonl")
    tie = (pref == 0.0) | (pref == 1.5)
    df = pd.DataFrame({
        "prompt": prompt.astype(str),
        "model_a": jud["model_1"].astype(str),
        "model_b": jud["model_2"].astype(str),
        "p_b_wins": np.where(tie, 0.5, pref - 1.0),
        "tie": tie,
        "weight": 1.0,
        "source": "alpaca_eval",
    })
    df = _finish(df, str(where))
    keep = (df["model_a"] != df["model_b"]) & ~df["model_b"].isin(ALPACA_NOT_MODELS) \
        & ~df["model_a"].isin(ALPACA_NOT_MODELS)  # self-comparisons say nothing
    return df[keep].reset_index(drop=True)


# --- RouterBench -----------------------------------------------------------------------------------


def _csv_files(p: Path, pattern: str) -> list[Path]:
    files = sorted(p.glob(pattern)) if p.is_dir() else [p]
    if not files:
        raise DataError(f"{p}: no {pattern} files in this directory")
    return files


def routed_question(raw_prompt: str, full_prompt: bool = False) -> str:
    """RouterBench's prompt field is a Python list literal of prompt strings (a retry repeats it):
    take the last one and, unless ``full_prompt``, its last blank-line-separated block."""
    text = raw_prompt
    if isinstance(raw_prompt, str) and raw_prompt.startswith("["):
        try:
            parsed = ast.literal_eval(raw_prompt)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list) and parsed and all(isinstance(s, str) for s in parsed):
            text = parsed[-1]
    if not isinstance(text, str):
        raise DataError(f"prompt {raw_prompt!r}: expected a string or a list of strings")
    text = text.strip()
    return text if full_prompt else text.split("\n\n")[-1].strip()


def read_routerbench(path=None) -> pd.DataFrame:
    """Raw RouterBench rows (one per prompt) from a CSV file or a directory of CSVs."""
    p = _resolve(path, "preferences/routerbench")
    frames = []
    for f in _csv_files(p, "*.csv"):
        try:
            df = pd.read_csv(f)
        except (ValueError, OSError) as exc:
            raise DataError(f"{f}: unreadable CSV: {exc}") from exc
        _require_columns(df, ["prompt"], f)
        models = routerbench_models(df)
        if len(models) < 2:
            raise DataError(f"{f}: needs >= 2 model correctness columns besides sample_id/eval_name/prompt "
                            f"and '<model>|total_cost'; found {models}")
        vals = df[models].apply(pd.to_numeric, errors="coerce")
        bad = vals.notna() & ~vals.isin([0, 1])
        if bad.any().any():
            col = bad.any()[lambda s: s].index[0]
            raise DataError(f"{f}: column {col!r} must hold 0/1 correctness (or be empty), "
                            f"got {_show(df.loc[bad[col], col].iloc[0])}")
        df[models] = vals
        df["_file"] = f.name
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def routerbench_models(df: pd.DataFrame) -> list[str]:
    """Correctness columns: everything but the id/prompt fields and the ``|total_cost`` columns."""
    meta = {"sample_id", "eval_name", "prompt", "_file", "oracle_model_to_route_to"}
    return [c for c in df.columns if c not in meta and "|" not in c]


def load_routerbench(path=None, full_prompt: bool = False) -> pd.DataFrame:
    """RouterBench correctness as pairwise rows (see the module docstring)."""
    raw = read_routerbench(path)
    models = routerbench_models(raw)
    prompts = raw["prompt"].map(lambda s: routed_question(s, full_prompt))
    vals = raw[models].to_numpy(dtype=float)
    parts = []
    for i, j in combinations(range(len(models)), 2):
        a, b = vals[:, i], vals[:, j]
        known = ~(np.isnan(a) | np.isnan(b))  # a model with no answer on a prompt gives no pair
        tie = known & (a == b)
        parts.append(pd.DataFrame({
            "prompt": prompts[known].to_numpy(),
            "model_a": models[i],
            "model_b": models[j],
            "p_b_wins": np.where(tie, 0.5, b)[known],  # exactly one correct: b wins iff b == 1
            "tie": tie[known],
            "weight": 1.0,
            "source": "routerbench",
        }))
    return _finish(pd.concat(parts, ignore_index=True), str(path or "routerbench"))


# --- open7 -----------------------------------------------------------------------------------------


def read_open7(path=None) -> pd.DataFrame:
    """Raw open7 rows: ``question``, ``file`` and one score column per model (NaN if absent)."""
    p = _resolve(path, "preferences/open7")
    rows = []
    for f in _csv_files(p, "*.jsonl"):
        for n, obj in iter_jsonl(f):
            q, scores = obj.get("question") if isinstance(obj, dict) else None, None
            if isinstance(obj, dict):
                scores = obj.get("scores")
            if not isinstance(q, str) or not isinstance(scores, dict):
                raise DataError(f"{f}:{n}: needs 'question' (string) and 'scores' ({{model: score}})")
            for m, s in scores.items():
                if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 <= s <= 1:
                    raise DataError(f"{f}:{n}: scores[{m!r}]={s!r}; must be a number in [0, 1]")
            rows.append({"question": q, "file": f.name, **scores})
    return pd.DataFrame(rows)


def load_open7(path=None, soft: bool = False) -> pd.DataFrame:
    """open7 multi-model correctness as pairwise rows (see the module docstring)."""
    raw = read_open7(path)
    models = [c for c in raw.columns if c not in ("question", "file")]
    vals = raw[models].to_numpy(dtype=float)
    parts = []
    for i, j in combinations(range(len(models)), 2):
        a, b = vals[:, i], vals[:, j]
        known = ~(np.isnan(a) | np.isnan(b))
        diff = b - a
        tie = known & (diff == 0)
        if soft:
            p, w = 0.5 + diff / 2, np.ones_like(diff)
        else:
            p, w = np.where(tie, 0.5, (diff > 0).astype(float)), np.where(tie, 1.0, np.abs(diff))
        parts.append(pd.DataFrame({
            "prompt": raw["question"].to_numpy()[known], "model_a": models[i], "model_b": models[j],
            "p_b_wins": p[known], "tie": tie[known], "weight": w[known], "source": "open7",
        }))
    if not parts:
        return empty_frame()
    return _finish(pd.concat(parts, ignore_index=True), str(path or "open7"))


# --- Chatbot Arena ---------------------------------------------------------------------------------

ARENA_COLUMNS = ["prompt", "model_a", "model_b", "winner_model_a", "winner_model_b", "winner_tie"]


def last_user_turn(prompt_field, where: str = "prompt") -> str:
    """Arena's ``prompt`` is a JSON list of the user's turns: the routed text is the last one."""
    turns = prompt_field
    if isinstance(prompt_field, str):
        try:
            turns = json.loads(prompt_field)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not a JSON list of turns ({exc}): {prompt_field[:80]!r}") from exc
    if isinstance(turns, np.ndarray):
        turns = turns.tolist()
    if isinstance(turns, str):
        return turns
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: expected a non-empty JSON list of turns, got {prompt_field!r:.80}")
    last = turns[-1]
    if isinstance(last, dict):  # OpenAI-style messages: take the last user message
        users = [t.get("content") for t in turns if isinstance(t, dict) and t.get("role") == "user"]
        last = users[-1] if users else None
    if not isinstance(last, str):
        # the 55k set has a few null turns; a battle without user text cannot be routed on
        return ""
    return last


def load_arena(path) -> pd.DataFrame:
    """Battles in the lmsys-arena-human-preference-55k format (CSV or Parquet)."""
    if path is None:
        raise DataError("arena: no path given; pass the CSV or Parquet file (e.g. train.csv of "
                        "lmsys-arena-human-preference-55k)")
    p = _resolve(path, "")
    try:
        raw = pd.read_parquet(p) if p.suffix in (".parquet", ".pq") else pd.read_csv(p)
    except (ValueError, OSError) as exc:
        raise DataError(f"{p}: unreadable arena file: {exc}") from exc
    _require_columns(raw, ARENA_COLUMNS, p)
    flags = raw[["winner_model_a", "winner_model_b", "winner_tie"]].apply(pd.to_numeric, errors="coerce")
    bad = flags.isna().any(axis=1) | ~flags.isin([0, 1]).all(axis=1) | (flags.sum(axis=1) != 1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{p}: row {i}: winner_model_a/winner_model_b/winner_tie must be 0/1 with "
                        f"exactly one set, got {flags.iloc[i].tolist()}")
    prompts = [last_user_turn(v, f"{p}: row {i} field 'prompt'") for i, v in enumerate(raw["prompt"])]
    tie = flags["winner_tie"].to_numpy() == 1
    df = pd.DataFrame({
        "prompt": prompts,
        "model_a": raw["model_a"].astype(str),
        "model_b": raw["model_b"].astype(str),
        "p_b_wins": np.where(tie, 0.5, flags["winner_model_b"].to_numpy(dtype=float)),
        "tie": tie, "weight": 1.0, "source": "arena",
    })
    return _finish(df, str(p))


# --- generic JSONL ---------------------------------------------------------------------------------


def load_jsonl(path) -> pd.DataFrame:
    """Canonical records, one JSON object per line (``tie``/``weight``/``source`` optional)."""
    if path is None:
        raise DataError("jsonl: no path given; pass a JSONL file of canonical records")
    p = _resolve(path, "")
    rows = []
    for n, obj in iter_jsonl(p):
        if not isinstance(obj, dict):
            raise DataError(f"{p}:{n}: each line must be a JSON object with fields {COLUMNS}")
        missing = [c for c in ("prompt", "model_a", "model_b", "p_b_wins") if c not in obj]
        if missing:
            raise DataError(f"{p}:{n}: missing field(s) {missing}; required: prompt, model_a, model_b, p_b_wins")
        rows.append(obj)
    if not rows:
        return empty_frame()
    df = pd.DataFrame(rows)
    if "source" not in df:
        df["source"] = "jsonl"
    return _finish(df, str(p))


def save_jsonl(df: pd.DataFrame, path) -> Path:
    """Write canonical records as JSONL atomically (temp file in the same dir, then rename)."""
    df = validate_frame(df, where="save_jsonl")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in df.to_dict(orient="records"):
                rec["tie"], rec["p_b_wins"], rec["weight"] = bool(rec["tie"]), float(rec["p_b_wins"]), float(rec["weight"])
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


# --- dispatch --------------------------------------------------------------------------------------

SOURCES.update({
    "alpaca_eval": load_alpaca_eval,
    "routerbench": load_routerbench,
    "arena": load_arena,
    "open7": load_open7,
    "jsonl": load_jsonl,
})


def load_source(name: str, path=None, **kw) -> pd.DataFrame:
    """Load one source by name (``SOURCES``); ``kw`` goes to its loader (e.g. ``soft=True``)."""
    if name not in SOURCES:
        raise DataError(f"unknown preference source {name!r}; known: {sorted(SOURCES)}")
    try:
        return SOURCES[name](path, **kw)
    except TypeError as exc:  # a bad option in a config file, e.g. {"sof": true}
        raise DataError(f"source {name!r}: bad options {sorted(kw)}: {exc}") from exc


# --- CLI: `rayroute data` --------------------------------------------------------------------------


def summarize(df: pd.DataFrame) -> dict:
    """Rows, distinct prompts, distinct models, ties: what ``rayroute data`` prints per source."""
    return {
        "rows": int(len(df)),
        "prompts": int(df["prompt"].nunique()),
        "models": int(pd.unique(pd.concat([df["model_a"], df["model_b"]])).size),
        "ties": int(df["tie"].sum()),
    }


def data_summary(sources=("alpaca_eval", "routerbench", "open7"), paths: dict | None = None) -> dict:
    """``{source: summarize(load_source(source))}``; callable from Python like the command."""
    paths = paths or {}
    return {s: summarize(load_source(s, paths.get(s))) for s in sources}
