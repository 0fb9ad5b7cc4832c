"""Smoke test of `rayroute bench-routers` on a tiny input (figures are not asserted: the machine
decides them; the command must run, cover every requested cell and keep decisions identical)."""

import json

from routers.cli import main


def test_bench_routers_smoke(tmp_path, shared_data):
    out = tmp_path / "bench.json"
    rc = main(["bench-routers", "--routers", "random,length,mf,sw_ranking", "--batches", "1,8",
               "--prompts", "16", "--embedders", "hash-384,hash-384", "--sw-reference-queries", "2",
               "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    cells = {(r["router"], r["batch"], r["included"]) for r in res["rows"]}
    for name in ("random", "length"):
        assert {(name, 1, True), (name, 8, True)} <= cells
    for name in ("mf", "sw_ranking"):
        assert {(name, b, inc) for b in (1, 8) for inc in (True, False)} <= cells
    assert all(r["prompts_per_s"] > 0 and r["usd_per_million"] > 0 for r in res["rows"])
    # the same embedder twice: identical decisions, zero score difference
    assert res["agreement"]["mf:hash-384"] == {"max_abs_score_diff": 0.0, "min_decision_agreement": 1.0}
    ref = res["sw_reference"]
    assert ref["queries"] == 2 and ref["max_abs_diff"] < 1e-3 and ref["speedup"] > 1
    md = out.with_suffix(".md").read_text()
    assert md.count("\n| mf | hash-384 |") == 8 and "Table 7" in md and "155.16" in md
