"""Smoke test of `rayroute bench-overhead` as a user runs it: its own local Ray cluster, the router
app and the no-op app side by side, both load-test modes, the score cache with repeated prompts,
everything shut down at the end. Tiny and short: figures are not asserted, only that each part ran
and reported (the figures come from the command itself, docs/routing-overhead.md)."""

import json
import subprocess
import sys

import yaml

from routers.paths import REPO_ROOT as REPO


def test_bench_overhead_end_to_end(tmp_path):
    from ops.weak_model_builder import build_tiny_llama

    cfg = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    args = cfg["applications"][0]["args"]
    # a router that hashes prompts (so its scores may be cached); the tiny weak model built here;
    # no strong-model key (the modes never need the strong model)
    args["routers"] = [{"alias": "random", "kwargs": {"seed": 0, "per_prompt": True}}]
    args["default_router"] = "random"
    args["weak_model"].update(model=str(build_tiny_llama(tmp_path / "tiny-llama")),
                              max_model_len=512, max_num_seqs=4)
    args["strong_model"]["api_key_env"] = "RR_BENCH_TEST_NO_SUCH_KEY"
    config = tmp_path / "serve_config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "bench-overhead", "--config", str(config), "--router", "random",
         "--concurrency", "2", "--chat-concurrency", "1", "--duration-s", "3", "--slice-s", "1", "--warmup", "2", "--max-tokens", "2",
         "--score-cache-entries", "100", "--repeat-share", "0.6", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads((out / "bench-overhead.json").read_text())
    assert res["router"] == "random" and res["score_cache_entries"] == 100 and res["repeat_share"] == 0.6
    for mode in ("route-vs-noop", "chat-vs-direct"):
        assert (out / f"loadtest-{mode}.png").stat().st_size > 1000
        for name, t in res[mode]["targets"].items():
            assert t["ok"] > 0 and t["errors"] == 0, (mode, name, t)
    assert res["route_vs_noop_throughput_ratio"] > 0 and res["route_vs_noop_p99_ratio"] > 0
    assert "chat_routing_overhead_p50_ms" in res
    assert 0 < res["router_cache"]["hits"] < res["router_cache"]["decisions"]
