"""Preference loaders: row counts on the real files (data README), encodings, errors, aliases."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pandas as pd
import pytest

from cli.main import main as cli_main
from routers.data import preferences as P
from routers.data.aliases import ALIASES, STRONG_DEFAULT, WEAK_DEFAULT, aliases_of, canonical
from routers.data.records import COLUMNS, MIN_PROMPT_CHARS
from routers.errors import DataError
from routers.paths import REPO_ROOT
from tests.fakes import synthetic_preferences

# --- real data, parsed once per module -------------------------------------------------------------


@pytest.fixture(scope="module")
def alpaca_raw(shared_data):
    return P.read_alpaca_judgments(shared_data / "preferences/alpaca_eval")


@pytest.fixture(scope="module")
def alpaca(shared_data):
    return P.load_alpaca_eval(shared_data / "preferences/alpaca_eval")


@pytest.fixture(scope="module")
def rb_raw(shared_data):
    return P.read_routerbench(shared_data / "preferences/routerbench")


@pytest.fixture(scope="module")
def rb(shared_data):
    return P.load_routerbench(shared_data / "preferences/routerbench")


@pytest.fixture(scope="module")
def open7_raw(shared_data):
    return P.read_open7(shared_data / "preferences/open7")


@pytest.fixture(scope="module")
def open7(shared_data):
    return P.load_open7(shared_data / "preferences/open7")


def test_alpaca_raw_counts_match_readme(alpaca_raw):
    ins, jud = alpaca_raw
    assert len(ins) == 805
    assert len(jud) == 105_381
    assert int((jud["preference"] == 0.0).sum()) == 193  # AlpacaEval's own draw code
    assert set(jud["model_1"]) == {"gpt4_1106_preview", "text_davinci_003"}


def test_alpaca_rows_and_preference_encoding(alpaca_raw, alpaca):
    ins, jud = alpaca_raw
    text = jud["instruction_id"].map(dict(zip(ins["id"], ins["instruction"])))
    keep = ((text.str.strip().str.len() >= MIN_PROMPT_CHARS)
            & (jud["model_1"] != jud["model_2"]).to_numpy()
            & ~jud["model_2"].isin(P.ALPACA_NOT_MODELS))
    assert len(alpaca) == int(keep.sum())
    pref = jud["preference"][keep].to_numpy()
    draw = (pref == 0.0) | (pref == 1.5)
    np.testing.assert_allclose(alpaca["p_b_wins"], np.where(draw, 0.5, pref - 1.0))
    np.testing.assert_array_equal(alpaca["tie"], draw)
    assert alpaca["tie"].sum() > 0 and ((alpaca["p_b_wins"] > 0) & (alpaca["p_b_wins"] < 1) & ~alpaca["tie"]).sum() > 0
    assert list(alpaca.columns) == COLUMNS


def test_alpaca_names_are_canonical(alpaca):
    names = set(alpaca["model_a"]) | set(alpaca["model_b"])
    assert STRONG_DEFAULT in names and WEAK_DEFAULT in names
    assert "gpt4_1106_preview" not in names and "example" not in names


def test_routerbench_counts_and_pair_expansion(rb_raw, rb):
    assert (rb_raw["_file"] == "arc_challenge.csv").sum() == 1_039
    assert (rb_raw["_file"] == "mbpp.csv").sum() == 299
    models = P.routerbench_models(rb_raw)
    assert len(models) == 11
    k = rb_raw[models].notna().sum(axis=1)
    assert len(rb) == int((k * (k - 1) // 2).sum())  # every pair of labelled models, no prompt pruned
    # gpt-4 vs Mixtral: a preference exactly where one of the two was right
    g, m = rb_raw["gpt-4-1106-preview"], rb_raw["mistralai/mixtral-8x7b-chat"]
    one_right = int(((g + m) == 1).sum())
    pair = rb[(rb["model_a"] == STRONG_DEFAULT) & (rb["model_b"] == WEAK_DEFAULT)]
    assert int((~pair["tie"]).sum()) == one_right
    assert int((pair["p_b_wins"] == 1.0).sum()) == int(((m == 1) & (g == 0)).sum())


def test_routerbench_routes_on_the_question_only(rb, shared_data):
    assert not rb["prompt"].str.contains("\n\n").any()  # few-shot blocks stripped
    full = P.load_routerbench(shared_data / "preferences/routerbench/mbpp.csv", full_prompt=True)
    assert len(full) == 299 * 55
    q = "Answer the question.\nA) x\n\nWhich gas do plants absorb?\nA) CO2\nAnswer:"
    assert P.routed_question(repr([q])) == "Which gas do plants absorb?\nA) CO2\nAnswer:"
    assert P.routed_question(repr(["old", q]), full_prompt=True) == q


def test_open7_counts_and_weighting(open7_raw, open7):
    assert len(open7_raw) == 12_650
    assert open7_raw["file"].nunique() == 13
    models = [c for c in open7_raw.columns if c not in ("question", "file")]
    assert len(models) == 7
    assert len(open7) == 12_650 * comb(7, 2)  # no open7 question is shorter than 16 chars
    s = open7_raw[models].to_numpy()
    a, b = s[:, 0], s[:, 1]  # the first pair in column order
    first = open7.iloc[: len(open7_raw)]
    np.testing.assert_allclose(first["weight"], np.where(a == b, 1.0, np.abs(b - a)))
    np.testing.assert_array_equal(first["tie"], a == b)
    np.testing.assert_allclose(first["p_b_wins"], np.where(a == b, 0.5, (b > a).astype(float)))


def test_open7_soft_labels(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"question": "What is two plus two, exactly?", "scores": {"m1": 0.2, "m2": 0.8}}) + "\n")
    df = P.load_open7(f, soft=True)
    assert df["p_b_wins"].tolist() == pytest.approx([0.8]) and df["weight"].tolist() == [1.0]
    hard = P.load_open7(f)
    assert hard["p_b_wins"].tolist() == [1.0] and hard["weight"].tolist() == pytest.approx([0.6])


# --- arena format ----------------------------------------------------------------------------------


def _arena_frame():
    return pd.DataFrame({
        "id": [1, 2, 3, 4],
        "model_a": ["gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "claude-2.0", "a"],
        "model_b": ["mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview", "llama-2-70b-chat", "b"],
        "prompt": [json.dumps(["Hi there, first turn here", "Now prove that sqrt(2) is irrational."]),
                   json.dumps(["Write a haiku about the autumn sea."]),
                   json.dumps(["Explain how a transistor amplifies current."]),
                   json.dumps(["hi"])],
        "response_a": ["x"] * 4, "response_b": ["y"] * 4,
        "winner_model_a": [1, 0, 0, 1], "winner_model_b": [0, 1, 0, 0], "winner_tie": [0, 0, 1, 0],
    })


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_arena_csv_and_parquet(tmp_path, fmt):
    path = tmp_path / f"arena.{fmt}"
    raw = _arena_frame()
    raw.to_csv(path, index=False) if fmt == "csv" else raw.to_parquet(path)
    df = P.load_source("arena", path)
    assert len(df) == 3  # "hi" is shorter than 16 characters: pruned
    assert df["prompt"][0] == "Now prove that sqrt(2) is irrational."  # last user turn
    assert df["p_b_wins"].tolist() == [0.0, 1.0, 0.5] and df["tie"].tolist() == [False, False, True]
    assert df["model_b"][0] == WEAK_DEFAULT and df["model_a"][2] == "claude-2"
    assert set(df["source"]) == {"arena"}


def test_arena_errors_name_field_and_path(tmp_path):
    path = tmp_path / "bad.csv"
    _arena_frame().drop(columns=["winner_tie"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) \['winner_tie'\]"):
        P.load_arena(path)
    two = _arena_frame()
    two.loc[1, "winner_model_a"] = 1
    two.to_csv(path, index=False)
    with pytest.raises(DataError, match="row 1"):
        P.load_arena(path)
    badjson = _arena_frame()
    badjson.loc[2, "prompt"] = "[not json"
    badjson.to_csv(path, index=False)
    with pytest.raises(DataError, match="row 2 field 'prompt'"):
        P.load_arena(path)
    with pytest.raises(DataError, match="no path"):
        P.load_arena(None)


# --- generic JSONL ---------------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path):
    df = synthetic_preferences(n_prompts=30, seed=3)
    df.loc[0, "weight"] = 2.5
    out = P.save_jsonl(df, tmp_path / "sub" / "prefs.jsonl")
    assert [p.name for p in out.parent.iterdir()] == ["prefs.jsonl"]  # no temp file left behind
    back = P.load_source("jsonl", out)
    pd.testing.assert_frame_equal(back, P.prune_short(df[COLUMNS]).reset_index(drop=True), check_dtype=False)


def test_jsonl_errors(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"prompt": "A long enough prompt here", "model_a": "a", "model_b": "b", "p_b_wins": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2"):
        P.load_jsonl(f)
    f.write_text('{"prompt": "A long enough prompt here", "model_a": "a", "p_b_wins": 1}\n')
    with pytest.raises(DataError, match="model_b"):
        P.load_jsonl(f)
    f.write_text('{"prompt": "A long enough prompt here", "model_a": "a", "model_b": "b", "p_b_wins": 3}\n')
    with pytest.raises(DataError, match="p_b_wins"):
        P.load_jsonl(f)


# --- malformed source files ------------------------------------------------------------------------


def test_missing_paths_are_named(tmp_path):
    for name in ("alpaca_eval", "routerbench", "open7", "arena", "jsonl"):
        with pytest.raises(DataError, match="nope"):
            P.load_source(name, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="instructions.jsonl"):
        P.load_alpaca_eval(tmp_path / "empty")
    with pytest.raises(DataError, match="unknown preference source 'bogus'"):
        P.load_source("bogus")


def _alpaca_dir(tmp_path, preference, iid=0):
    d = tmp_path / "ae"
    d.mkdir(exist_ok=True)
    (d / "instructions.jsonl").write_text(json.dumps({"id": 0, "dataset": "x", "instruction": "Name three rivers in Europe."}) + "\n")
    (d / "judgments.csv").write_text(
        f"instruction_id,model_1,model_2,annotator,preference\n{iid},gpt4_1106_preview,m,a,{preference}\n")
    return d


def test_alpaca_bad_values(tmp_path):
    assert P.load_alpaca_eval(_alpaca_dir(tmp_path, 1.25))["p_b_wins"].tolist() == [0.25]
    with pytest.raises(DataError, match="preference=3.0"):
        P.load_alpaca_eval(_alpaca_dir(tmp_path, 3.0))
    with pytest.raises(DataError, match="instruction_id=7"):
        P.load_alpaca_eval(_alpaca_dir(tmp_path, 1.0, iid=7))


def test_routerbench_and_open7_bad_values(tmp_path):
    f = tmp_path / "rb.csv"
    f.write_text('sample_id,eval_name,prompt,m1,m2,m1|total_cost\n1,x,"[\'What is the capital of France?\']",1,2,0.1\n')
    with pytest.raises(DataError, match="'m2'"):
        P.load_routerbench(f)
    o = tmp_path / "o.jsonl"
    o.write_text(json.dumps({"question": "What is the capital of Spain?", "scores": {"m1": 1.5, "m2": 0}}) + "\n")
    with pytest.raises(DataError, match=r"o\.jsonl:1.*m1"):
        P.load_open7(o)
    o.write_text(json.dumps({"q": "x"}) + "\n")
    with pytest.raises(DataError, match="'question'"):
        P.load_open7(o)


# --- aliases, data dir, CLI ------------------------------------------------------------------------


def test_alias_table():
    for n in ("gpt4_1106_preview", "gpt-4-1106-preview", " GPT-4-1106-Preview "):
        assert canonical(n) == STRONG_DEFAULT
    for n in ("mistralai/mixtral-8x7b-chat", "Mixtral-8x7B-Instruct-v0.1",
              "mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b-instruct-v0.1"):
        assert canonical(n) == WEAK_DEFAULT
    assert canonical("claude-v2") == canonical("claude-2") == "claude-2"
    assert canonical("Mixtral-8x7B-Instruct-v0.1_concise") == "Mixtral-8x7B-Instruct-v0.1_concise"
    assert canonical("some-unknown-model") == "some-unknown-model"
    assert all(canonical(v) == v for v in set(ALIASES.values()))  # canonical is idempotent
    assert "gpt4_1106_preview" in aliases_of(STRONG_DEFAULT)


def test_default_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYROUTE_DATA", str(tmp_path))
    assert P.default_data_dir() == tmp_path
    with pytest.raises(DataError, match=str(tmp_path)):
        P.load_routerbench()
    monkeypatch.delenv("RAYROUTE_DATA")
    assert P.default_data_dir() == REPO_ROOT.parent / "shared" / "data"


def test_data_command(shared_data, rb, monkeypatch, capsys):
    monkeypatch.setenv("RAYROUTE_DATA", str(shared_data))
    assert cli_main(["data", "--sources", "routerbench"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("routerbench")][0]
    assert line.split()[1:] == [f"{len(rb):,}", f"{rb['prompt'].nunique():,}", "11", f"{int(rb['tie'].sum()):,}"]
    assert cli_main(["data", "--sources", "jsonl", "--path", "jsonl"]) == 1  # no '=': named error
    assert "SOURCE=PATH" in capsys.readouterr().err
