"""The learning demonstration, small (CI smoke): MMLU traffic through the real server on fake
golden backends, a judge, two gates at 30 and 60 labels, the live router measured on unseen
questions; no failed request, every artefact written. The full run: docs/learning.md."""

from __future__ import annotations

import json

from bench.learning_demo import DemoArgs, run_demo


def test_the_learning_loop_end_to_end_small(tmp_path, shared_data):
    r = run_demo(DemoArgs(out_dir=str(tmp_path / "out"), sizes=(30, 60), benchmarks=("mmlu",), eval_questions=120,
                          noise=0.2, work_dir=str(tmp_path / "work"), data_dir=str(shared_data)))
    assert r["requests"]["failed"] == 0, r["requests"]["failures"]
    rows = r["checkpoints"]
    assert [c["n"] for c in rows] == [30, 60] and all(c["labels_of_benchmark"] >= c["n"] for c in rows)
    assert all(c["gate"]["reason"] and isinstance(c["gate"]["promote"], bool) for c in rows)
    assert all(0.3 < c["live_apgr"] < 0.9 for c in rows)  # a real APGR of a real router (random: ~0.5)
    learning = r["server_stats"]["learning"]
    assert learning["labels"]["judge"] >= 60 and learning["judge_calls"] >= 120
    assert sum(learning["promotions"].values()) == 2
    promoted = [c for c in rows if c["promoted"]]
    assert r["server_stats"]["router_reloads"].get("linear_static", 0) == len(promoted)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["checkpoints"][-1]["n"] == 60
    assert (tmp_path / "out" / "learning-curve.png").stat().st_size > 1000
    assert "live APGR" in (tmp_path / "out" / "results.md").read_text()
