"""`rayroute bench-nway`: the committed results name their command and the docs quote them."""

import json

from bench.nway_speed import markdown
from routers.paths import REPO_ROOT


def test_committed_results_record_their_command_and_match_the_docs():
    result = json.loads((REPO_ROOT / "results" / "nway-speed" / "results.json").read_text())
    assert result["command"].startswith("rayroute bench-nway")
    assert result["machine"]["blas_threads"] == 1 and len(result["runs"]) == 3
    assert (REPO_ROOT / "results" / "nway-speed" / "results.md").read_text() == markdown(result)
    p50 = result["summary"]["nway_p50_ms"]
    doc = (REPO_ROOT / "docs" / "nway-routing.md").read_text()
    assert f"{p50['median']:.3f} [{p50['min']:.3f}, {p50['max']:.3f}]" in doc
    assert result["meets_target"] == (p50["median"] <= result["target_nway_p50_ms"])


def test_the_cli_has_it():
    import argparse

    from cli.bench import add_cli

    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    ns = parser.parse_args(["bench-nway", "--runs", "1"])
    assert ns.runs == 1 and ns.threads == 1 and ns.out.endswith("results/nway-speed")
