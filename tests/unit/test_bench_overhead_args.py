"""`rayroute bench-overhead`'s app arguments: the router under test alone, its score cache as asked
(off by default, so the figures are scoring), and bad arguments refused before a cluster starts."""

import pytest

from bench.loadtest import LoadTestError
from bench.overhead import bench_overhead, load_app_args
from routers.paths import REPO_ROOT as REPO


def test_only_the_router_under_test_with_the_cache_as_asked():
    args = load_app_args(REPO / "serve_config.yaml", "mf")
    assert [r["alias"] for r in args["routers"]] == ["mf"] and args["default_router"] == "mf"
    assert args["routers"][0]["score_cache_entries"] == 0  # serve_config.yaml has 10000
    cached = load_app_args(REPO / "serve_config.yaml", "mf", score_cache_entries=500)
    assert cached["routers"][0]["score_cache_entries"] == 500
    with pytest.raises(SystemExit, match="nope"):
        load_app_args(REPO / "serve_config.yaml", "nope")


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_bad_repeat_share_is_refused_before_ray_starts(share, tmp_path):
    with pytest.raises(LoadTestError, match="repeat_share"):
        bench_overhead(repeat_share=share, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_run_shorter_than_one_slice_per_target_is_refused(tmp_path):
    with pytest.raises(LoadTestError, match=r"duration_s=3 gives 2 targets less than one 5 s slice each"):
        bench_overhead(duration_s=3, out_dir=tmp_path)
    bench_args = ["bench-overhead", "--duration-s", "3", "--slice-s", "1", "--repeat-share", "2", "--out", str(tmp_path)]
    from cli.main import main

    assert main(bench_args) == 2  # one line on stderr, no cluster started
    assert not list(tmp_path.iterdir())


def test_the_load_test_sends_the_first_key_of_the_ingress_variable(monkeypatch):
    from bench.loadtest import ingress_key

    monkeypatch.setenv("RAYROUTE_API_KEYS", " k1 , k2")
    assert ingress_key() == "k1"
    monkeypatch.setenv("RAYROUTE_API_KEYS", "")
    assert ingress_key() is None


def test_zero_runs_is_refused_before_ray_starts(tmp_path):
    with pytest.raises(LoadTestError, match="runs must be >= 1, got 0"):
        bench_overhead(runs=0, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_runs_are_summarised_as_median_and_range():
    from bench.overhead import summarise_runs

    runs = [{"route_vs_noop_throughput_ratio": r, "chat_routing_overhead_p50_ms": c}
            for r, c in ((1.1, 4.0), (0.9, 9.0), (1.0, -2.0))]
    s = summarise_runs(runs)
    assert s["route_vs_noop_throughput_ratio"] == 1.0 and s["route_vs_noop_throughput_ratio_range"] == [0.9, 1.1]
    assert s["chat_routing_overhead_p50_ms"] == 4.0 and s["chat_routing_overhead_p50_ms_range"] == [-2.0, 9.0]
    assert "route_vs_noop_p99_ratio" not in s  # a figure no run measured is not invented
