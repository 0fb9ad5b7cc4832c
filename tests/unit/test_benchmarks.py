"""Benchmark loaders on the real shared files (counts and figures from ../shared/data/README.md),
and the generic outcomes CSV on small files written here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routers.data import benchmarks as bm
from routers.errors import DataError


@pytest.fixture(scope="module")
def bdir(shared_data):
    return shared_data / "benchmarks"


def test_mmlu_counts_and_figures(bdir):
    raw = bm.load_mmlu(bdir, drop_contaminated=False)
    assert len(raw) == bm.MMLU_ROWS == 14_042
    assert len({i.split(":")[0] for i in raw.ids}) == bm.MMLU_FILES
    assert set(np.unique(raw.strong)) <= {0.0, 1.0}
    b = bm.load_mmlu(bdir)
    assert len(b) == 14_037 and b.dropped == {"shipped contaminated list": 5} and b.n_original == 14_042
    assert round(b.display(b.strong_mean), 1) == 80.6
    assert round(b.display(b.weak_mean), 1) == 68.1


def test_gsm8k_counts_and_figures(bdir):
    assert len(bm.load_gsm8k(bdir, drop_contaminated=False)) == bm.GSM8K_ROWS
    b = bm.load_gsm8k(bdir)
    assert len(b) == 1_307 and b.dropped["shipped contaminated list"] == 12
    assert round(100 * b.strong_mean, 1) == 85.8
    assert round(100 * b.weak_mean, 1) == 63.7


def test_mt_bench_first_turn_and_mean_of_two_turns(bdir):
    raw = bm.load_mt_bench(bdir, drop_contaminated=False)
    assert len(raw) == bm.MT_BENCH_QUESTIONS
    questions = [json.loads(line) for line in open(bdir / "mt_bench" / "question.jsonl")]
    assert raw.prompts[0] == questions[0]["turns"][0]
    qid = questions[0]["question_id"]
    grades = [json.loads(line) for line in open(bdir / "mt_bench" / "judgements.jsonl")]
    g = [r["score"] for r in grades if r["question_id"] == qid and r["model"] == bm.STRONG_MODEL]
    assert len(g) == 2 and raw.strong[0] == pytest.approx(np.mean(g))
    b = bm.load_mt_bench(bdir)
    assert len(b) == 72 and b.scale == "grade"
    assert round(b.strong_mean, 2) == 9.21 and round(b.weak_mean, 2) == 8.28


def test_contaminated_lists(bdir):
    assert [len(bm.load_contaminated(n, bdir)) for n in ("mmlu", "gsm8k", "mt_bench")] == [5, 12, 8]
    with pytest.raises(DataError, match="unknown benchmark"):
        bm.load_contaminated("hellaswag", bdir)


def test_missing_dir_names_path(tmp_path):
    with pytest.raises(DataError, match="RAYROUTE_DATA"):
        bm.load_gsm8k(tmp_path)


def test_outcomes_csv(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("prompt,strong,weak\nhello there friend,1,0\n\"what is 2+2, really\",True,False\n")
    b = bm.load_benchmark(p)
    assert b.name == "mine" and b.prompts[1] == "what is 2+2, really"
    assert b.strong.tolist() == [1.0, 1.0] and b.weak.tolist() == [0.0, 0.0] and b.scale == "accuracy"
    g = tmp_path / "graded.csv"
    g.write_text("q,s,w\nabc,9.5,7\n")
    b2 = bm.load_outcomes_csv(g, prompt_col="q", strong_col="s", weak_col="w")
    assert b2.scale == "grade" and b2.strong[0] == 9.5


def test_outcomes_csv_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("prompt,strong\nx,1\n")
    with pytest.raises(DataError, match="'weak'"):
        bm.load_outcomes_csv(p)
    p.write_text("prompt,strong,weak\nx,1,maybe\n")
    with pytest.raises(DataError, match="maybe"):
        bm.load_outcomes_csv(p)
    with pytest.raises(DataError, match="does not exist"):
        bm.load_outcomes_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown benchmark"):
        bm.load_benchmark("hellaswag")


def test_subset_records_reason(tmp_path):
    p = tmp_path / "o.csv"
    p.write_text("prompt,strong,weak\na,1,0\nb,0,0\nc,1,1\n")
    b = bm.load_outcomes_csv(p).subset([True, False, False], "cosine >= 0.95")
    assert b.prompts == ["a"] and b.dropped == {"cosine >= 0.95": 2}
