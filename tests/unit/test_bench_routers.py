"""Smoke test of `rayroute bench-routers` on a tiny input (figures are not asserted: the machine
decides them; the command must run, cover every requested cell and keep decisions identical)."""

import json

from cli.main import main


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
    # the raw file and its table name the command that wrote them
    assert res["command"].startswith("rayroute bench-routers --routers random,length,mf,sw_ranking")
    assert md.startswith(f"`{res['command']}`")


def test_bench_routers_prompts_file_and_reference_embeddings(tmp_path, shared_data):
    import numpy as np
    import pytest

    from bench.router_speed import bench_routers
    from routers.errors import ConfigError

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}: " + "why " * i}) + "\n" for i in range(12)))
    saved = tmp_path / "ref.npy"
    common = dict(routers=["mf"], batch_sizes=[4], embedders=["hash-384"], sw_reference_queries=0,
                  prompts_file=prompts)
    first = bench_routers(save_embeddings=saved, **common)
    assert first["prompts"] == 12 and np.load(saved).shape == (12, 384)
    # the same prompts, embedded "elsewhere" by the same path: full agreement
    second = bench_routers(reference_embeddings=saved, **common)
    agr = second["agreement"]["mf:hash-384@cpu vs reference"]
    assert agr == {"max_abs_score_diff": 0.0, "min_decision_agreement": 1.0}
    # a perturbed reference shows up as a score difference
    np.save(saved, np.load(saved)[::-1].copy())
    third = bench_routers(reference_embeddings=saved, **common)
    assert third["agreement"]["mf:hash-384@cpu vs reference"]["max_abs_score_diff"] > 0
    np.save(saved, np.zeros((3, 384), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"shape \(3, 384\)"):
        bench_routers(reference_embeddings=saved, **common)


def test_bench_times_a_checkpoint_on_its_own_embedder(tmp_path, monkeypatch, shared_data):
    # an mf checkpoint trained on another embedding space (hash-64 here, static in production) is
    # timed on its own embedder only: MiniLM paths would feed it vectors from the wrong space
    from bench.router_speed import bench_routers
    from routers.training.mf import train_mf
    from tests.fakes import STRONG_MODELS, WEAK_MODELS, HashEmbedder, synthetic_preferences

    train_mf(synthetic_preferences(60, seed=0), out_dir=tmp_path / "mf_hash", embedder=HashEmbedder(64),
             epochs=1, batch_size=32, dim=8, groups={"strong": STRONG_MODELS, "weak": WEAK_MODELS},
             show_progress=False)
    monkeypatch.setenv("RAYROUTE_CHECKPOINTS", str(tmp_path))
    res = bench_routers(routers=["mf_hash"], batch_sizes=[4], n_prompts=8, embedders=["hash-384", "onnx"],
                        sw_reference_queries=0)
    assert {r["embedder"] for r in res["rows"]} == {"hash-64"}
    assert {(r["batch"], r["included"]) for r in res["rows"]} == {(4, True), (4, False)}


def test_bench_takes_checkpoint_paths_and_skips_what_cannot_load(tmp_path, shared_data):
    # like `rayroute route` and `eval`, a checkpoint directory anywhere is accepted by path;
    # a missing path or an unknown name is skipped with the reason, not a crash mid-run
    from bench.router_speed import bench_routers
    from routers.training.mf import train_mf
    from tests.fakes import STRONG_MODELS, WEAK_MODELS, HashEmbedder, synthetic_preferences

    ckpt = tmp_path / "elsewhere" / "my_mf"
    train_mf(synthetic_preferences(60, seed=0), out_dir=ckpt, embedder=HashEmbedder(64),
             epochs=1, batch_size=32, dim=8, groups={"strong": STRONG_MODELS, "weak": WEAK_MODELS},
             show_progress=False)
    missing = tmp_path / "nope"
    res = bench_routers(routers=[str(ckpt), str(missing), "no_such_router"], batch_sizes=[4], n_prompts=8,
                        embedders=["hash-384"], sw_reference_queries=0)
    assert {(r["batch"], r["included"], r["embedder"]) for r in res["rows"]} == {(4, True, "hash-64"),
                                                                                  (4, False, "hash-64")}
    assert {r["router"] for r in res["rows"]} == {str(ckpt)} and {r["kind"] for r in res["rows"]} == {"mf"}
    assert len(res["skipped"]) == 2
    assert str(missing) in res["skipped"][0] and "no_such_router" in res["skipped"][1]
