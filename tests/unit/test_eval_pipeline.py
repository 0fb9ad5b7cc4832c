"""`rayroute eval` end to end on a tiny input (hash embedder, synthetic data), so it cannot rot;
plus the random baseline, decontamination and similarity on hand-made vectors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cli.main import main
from routers.data.benchmarks import load_outcomes_csv
from routers.evaluation.baselines import random_baseline
from routers.evaluation.pipeline import cost_analysis
from routers.evaluation.similarity import benchmark_similarity, decontaminate
from tests.fakes import STRONG_MODELS, WEAK_MODELS, synthetic_benchmark, synthetic_preferences


@pytest.fixture()
def tiny(tmp_path):
    prompts, s, w = synthetic_benchmark(n=240, seed=7)
    prompts[0] = "Please tell me about the integral and prove this theorem now"  # exact copy below
    bench = tmp_path / "tiny.csv"
    pd.DataFrame({"prompt": prompts, "strong": s, "weak": w}).to_csv(bench, index=False)
    prefs = synthetic_preferences(n_prompts=150, seed=2)
    prefs.loc[0, "prompt"] = prompts[0]
    jl = tmp_path / "prefs.jsonl"
    with open(jl, "w") as fh:
        for rec in prefs.to_dict("records"):
            fh.write(json.dumps(rec) + "\n")
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"sources": [{"name": "jsonl", "path": str(jl)}]}))
    return bench, mix


def test_eval_cli_smoke(tiny, tmp_path, capsys):
    bench, mix = tiny
    # a learned checkpoint trained on other synthetic data (the "general data"), hash embedder
    from routers.data.golden import pair_targets
    from routers.embeddings import embedder_from_spec
    from routers.models.linear import fit_linear

    emb = embedder_from_spec("hash-64")
    p, s, w = synthetic_benchmark(n=400, seed=21)
    ckpt = fit_linear(p, emb.embed(p), pair_targets(s, w, 1.0), embedder=emb, bits=12).save(tmp_path / "lin")
    out = tmp_path / "out"
    doc = tmp_path / "docs" / "results.md"
    rc = main(["eval", "--benchmarks", str(bench), "--routers", f"{ckpt},random",
               "--mix", str(mix), "--strong-models", ",".join(STRONG_MODELS), "--weak-models", ",".join(WEAK_MODELS),
               "--embedder", "hash-64", "--folds", "3", "--n-random", "50", "--out", str(out), "--doc", str(doc),
               "--cache-dir", str(tmp_path / "cache"), "--recipes", "", "--quiet", "--record-command"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    b = res["benchmarks"]["tiny"]
    rows = {r["router"]: r for r in b["rows"]}
    assert set(rows) == {"length", str(ckpt)}
    assert rows[str(ckpt)]["config"] == "checkpoint lin (general data)"
    # the copied prompt is found by cosine >= 0.95 and dropped, and reported per source
    assert b["contamination"]["embedding"]["total"] >= 1 and b["n"] < 240
    # hard words drive both the synthetic labels and the benchmark: learned routers beat random
    assert rows[str(ckpt)]["apgr"] > b["random"]["apgr"]["hi"]
    assert b["oracle"]["apgr"] >= max(r["apgr"] for r in b["rows"])
    assert (out / "tiny.png").stat().st_size > 1000
    text = doc.read_text()
    assert "| training data | router | CPT(50%) | CPT(80%) | APGR | improvement |" in text
    assert "random (95% interval)" in text and "oracle" in text and "](../out/tiny.png)" in text
    assert "Benchmark-dataset similarity" in text
    assert "tiny: n=" in capsys.readouterr().out
    # both reports name the command that regenerates them
    for report in (text, (out / "results.md").read_text()):
        assert "rayroute eval --benchmarks" in report and "--record-command" in report


def test_eval_cli_unknown_recipe_fails_before_any_work(tmp_path, capsys):
    rc = main(["eval", "--benchmarks", "mt_bench", "--routers", "length", "--recipes", "linear_static,bogus",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 1 and "unknown recipe 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_eval_cli_bad_benchmark(tmp_path, capsys):
    rc = main(["eval", "--benchmarks", "hellaswag", "--routers", "length", "--no-decontaminate",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 1 and "unknown benchmark" in capsys.readouterr().err


def test_checkpoint_router_scored_and_cached(tmp_path):
    from cli.evaluate import run_eval
    from routers.models.length import LengthRouter

    prompts, s, w = synthetic_benchmark(n=100, seed=1)
    bench = tmp_path / "b.csv"
    pd.DataFrame({"prompt": prompts, "strong": s, "weak": w}).to_csv(bench, index=False)
    ckpt = LengthRouter(median_chars=40).save(tmp_path / "len_ckpt")
    kw = dict(routers=[str(ckpt), "random", "no_such_router"], benchmarks=[str(bench)], out=tmp_path / "o",
              decontaminate=False, n_random=20, cache_dir=tmp_path / "c", progress=False)
    first = run_eval(**kw)["benchmarks"]["b"]
    rows = {r["router"]: r for r in first["rows"]}
    # "length" is the always-present baseline row; "random" is the baseline band, not a row
    assert list(rows) == ["length", str(ckpt)] and rows[str(ckpt)]["cached"] is False
    # a monotone map of length ranks like the length baseline
    assert rows[str(ckpt)]["apgr"] == pytest.approx(rows["length"]["apgr"])
    assert "no_such_router" in first["skipped"]
    second = run_eval(**kw)["benchmarks"]["b"]
    assert {r["router"]: r for r in second["rows"]}[str(ckpt)]["cached"] is True


def test_random_baseline_interval():
    _, s, w = synthetic_benchmark(n=1000, seed=4)
    r = random_baseline(s, w, n_trials=300, seed=1)
    assert abs(r["apgr"]["mean"] - 0.5) < 0.01
    assert r["apgr"]["lo"] < 0.5 < r["apgr"]["hi"] and r["apgr"]["hi"] - r["apgr"]["lo"] < 0.1
    assert 0.4 < r["cpt50"]["mean"] < 0.6 and 0.7 < r["cpt80"]["mean"] < 0.9
    assert np.all(np.array(r["quality_lo"]) <= np.array(r["quality_hi"]))


def test_decontaminate_and_similarity(tmp_path):
    p = tmp_path / "o.csv"
    pd.DataFrame({"prompt": ["a", "b", "c"], "strong": [1, 1, 0], "weak": [0, 1, 0]}).to_csv(p, index=False)
    bench = load_outcomes_csv(p)
    e = np.eye(3, dtype=np.float32)
    near = np.array([[0.96, 0.28, 0]], dtype=np.float32)
    near /= np.linalg.norm(near)
    far = np.array([[0, 0.6, 0.8]], dtype=np.float32)
    out, emb, rep = decontaminate(bench, e, {"src1": near, "src2": far})
    assert rep == {"src1": 1, "src2": 0, "total": 1} and out.prompts == ["b", "c"] and len(emb) == 2
    assert out.dropped["embedding cosine >= 0.95 to a training prompt"] == 1
    assert benchmark_similarity(e, np.vstack([near, far])) == pytest.approx((near[0, 0] + 0.6 + 0.8) / 3)


def test_cost_analysis():
    rows = [{"router": "length", "config": "x", "apgr": 0.9, "cpt50": 0.1, "cpt80": 0.2},
            {"router": "r", "config": "y", "apgr": 0.6, "cpt50": 0.25, "cpt80": 0.5}]
    rnd = {"cpt50": {"mean": 0.5}, "cpt80": {"mean": 0.8}}
    c = cost_analysis(rows, rnd, 24.7, 0.24)
    assert c["router"] == "r" and c["cpt50"]["saving_vs_random"] == pytest.approx(2.0)
    assert c["cpt80"]["router_usd_per_mtok"] == pytest.approx(0.5 * 24.7 + 0.5 * 0.24)


@pytest.mark.parametrize("name", ["mt_bench", "gsm8k"])
def test_random_baseline_on_real_benchmarks(shared_data, name):
    from routers.data.benchmarks import load_benchmark
    from routers.evaluation import metrics as m

    b = load_benchmark(name, shared_data / "benchmarks")
    r = random_baseline(b.strong, b.weak, n_trials=200, seed=0)
    assert abs(r["apgr"]["mean"] - 0.5) <= 0.03
    assert m.oracle_apgr(b.strong, b.weak) > r["apgr"]["hi"]
