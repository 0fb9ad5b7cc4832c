"""`rayroute train`: the CLI wraps the trainer functions; a tiny end-to-end run per cheap router."""

from __future__ import annotations

import numpy as np
import pytest

from cli.main import main
from cli.train import run_train, trainer
from routers.data.preferences import save_jsonl
from routers.errors import ConfigError
from routers.registry import route_prompts as route
from tests.fakes import synthetic_preferences


@pytest.fixture(autouse=True)
def _only_train_subcommand(monkeypatch):
    # Test `train` alone: other subcommands are other parts' business (and may be mid-edit).
    import cli.main

    monkeypatch.setattr(cli.main, "COMMAND_MODULES", ("cli.train",))


@pytest.fixture(scope="module")
def prefs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "prefs.jsonl"
    save_jsonl(synthetic_preferences(60, seed=2), path)
    return path


def test_train_mf_from_cli_then_route(prefs_file, tmp_path, capsys):
    out = tmp_path / "mf"
    rc = main(["train", "mf", "--mix", str(prefs_file), "--out", str(out), "--embedder", "hash-32",
               "--epochs", "1", "--dim", "8", "--strong", "big-model-1", "--weak", "small-model-1"])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("[train mf]") and "val_log_loss=" in line and "val_accuracy=" in line
    rows = route(str(out), ["Prove the integral theorem", "hello there, favorite song?"], 0.5)
    assert [r["routed_to"] in ("strong", "weak") for r in rows] == [True, True]
    assert 0.0 <= rows[0]["p_strong"] <= 1.0


def test_train_sw_ranking_from_cli_uses_tiers(prefs_file, tmp_path, capsys):
    out = tmp_path / "sw"
    rc = main(["train", "sw_ranking", "--mix", str(prefs_file), "--out", str(out), "--embedder", "hash-32",
               "--group-by", "tiers"])
    assert rc == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("[train sw_ranking]")
    from routers.registry import load_router

    r = load_router(out)
    assert r.group_names[0] == "tier0" and r.embedder_name == "hash-32"
    assert np.all(np.isfinite(r.score(["some prompt about matrix algorithms"])))


def test_unknown_pair_is_a_clean_cli_error(prefs_file, tmp_path, capsys):
    rc = main(["train", "mf", "--mix", str(prefs_file), "--out", str(tmp_path / "x"), "--embedder", "hash-8",
               "--strong", "gpt-9"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "gpt-9" in err and "big-model-1" in err


def test_option_the_trainer_does_not_take_is_named(prefs_file, tmp_path):
    with pytest.raises(ConfigError, match="max_prompts"):
        run_train("mf", mix=str(prefs_file), out_dir=tmp_path, embedder="hash-8", max_prompts=3)


def test_missing_trainer_module_is_a_clear_error(monkeypatch):
    from cli import train

    monkeypatch.setitem(train.TRAINERS, "causal_llm", "routers.training.not_there:train_causal_llm")
    with pytest.raises(ConfigError, match="cannot be imported"):
        trainer("causal_llm")
    with pytest.raises(ConfigError, match="trainable routers"):
        trainer("random")


def test_bad_embedder_spec(prefs_file, tmp_path):
    with pytest.raises(ConfigError, match="hash-<dim>"):
        run_train("sw_ranking", mix=str(prefs_file), out_dir=tmp_path, embedder="hash-x")


@pytest.mark.parametrize("router,builder,extra", [
    ("bert", "tiny_bert", ["--num-layers", "1"]),
    ("causal_llm", "tiny_llama", ["--lora"]),
])
def test_classifiers_train_from_cli_with_bounded_steps(prefs_file, tmp_path, capsys, router, builder, extra):
    from tests.unit import tiny_hf

    base = getattr(tiny_hf, builder)(tmp_path / "base")
    out = tmp_path / router
    rc = main(["train", router, "--mix", str(prefs_file), "--out", str(out), "--base-model", str(base),
               "--max-steps", "2", "--max-length", "96", "--batch-size", "4", "--epochs", "0.5", *extra])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"[train {router}]") and "steps=2" in line and "val_loss=" in line
    rows = route(str(out), ["Prove the integral theorem"], 0.5)
    assert 0.0 <= rows[0]["p_strong"] <= 1.0
    if router == "bert":
        assert "layers=1" in line  # --num-layers reached the trainer and the checkpoint
