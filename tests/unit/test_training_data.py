"""Training-data mix: config validation, weighting, strong/weak orientation, prompt-level split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routers.data.aliases import STRONG_DEFAULT, WEAK_DEFAULT
from routers.data.preferences import save_jsonl
from routers.data.tiers import TierTable, compute_tiers
from routers.errors import ConfigError, UnknownModelError
from routers.training.data import (PAIR_COLUMNS, SourceSpec, TrainingMix, default_mix, load_mix,
                                   read_mix, strong_weak_pairs, train_val_split)
from tests.fakes import STRONG_MODELS, WEAK_MODELS, synthetic_preferences

# --- config ----------------------------------------------------------------------------------------


def test_default_mix_is_alpaca_and_routerbench():
    mix = default_mix()
    assert [(s.name, s.weight) for s in mix.sources] == [("alpaca_eval", 1.0), ("routerbench", 1.0)]
    assert SourceSpec.model_fields["weight"].description


def test_mix_from_json_and_yaml(tmp_path):
    cfg = {"sources": [{"name": "jsonl", "path": "a.jsonl", "weight": 2.0},
                       {"name": "open7", "weight": 0.5, "options": {"soft": True}}]}
    j = tmp_path / "mix.json"
    j.write_text(json.dumps(cfg))
    y = tmp_path / "mix.yaml"
    y.write_text("sources:\n  - {name: jsonl, path: a.jsonl, weight: 2.0}\n"
                 "  - name: open7\n    weight: 0.5\n    options: {soft: true}\n")
    assert TrainingMix.from_file(j) == read_mix(y) == TrainingMix.model_validate(cfg)


@pytest.mark.parametrize("cfg, match", [
    ({"sources": [{"name": "jsonl", "weight": -1}]}, "sources.0.weight"),
    ({"sources": [{"name": "jsonl", "wieght": 1}]}, "sources.0.wieght"),
    ({"sources": [{"name": "bogus"}]}, "sources.0.name='bogus'"),
    ({"sources": []}, "'sources'"),
    ({"srcs": []}, "srcs"),
])
def test_mix_errors_name_the_field(tmp_path, cfg, match):
    f = tmp_path / "m.json"
    f.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=match) as exc:
        TrainingMix.from_file(f)
    assert str(f) in str(exc.value)


def test_mix_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        TrainingMix.from_file(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        TrainingMix.from_file(bad)


# --- load_mix --------------------------------------------------------------------------------------


@pytest.fixture()
def two_jsonl(tmp_path):
    a = save_jsonl(synthetic_preferences(n_prompts=20, seed=1), tmp_path / "a.jsonl")
    b = save_jsonl(synthetic_preferences(n_prompts=10, seed=2), tmp_path / "b.jsonl")
    return a, b


def test_load_mix_multiplies_source_weights(two_jsonl):
    a, b = two_jsonl
    mix = TrainingMix(sources=[SourceSpec(name="jsonl", path=str(a), weight=2.0),
                               SourceSpec(name="jsonl", path=str(b), weight=0.5),
                               SourceSpec(name="jsonl", path="/nonexistent.jsonl", weight=0.0)])
    df = load_mix(mix)
    n_a = len(synthetic_preferences(n_prompts=20, seed=1))
    assert len(df) == n_a + len(synthetic_preferences(n_prompts=10, seed=2))
    assert (df["weight"][:n_a] == 2.0).all() and (df["weight"][n_a:] == 0.5).all()
    assert load_mix({"sources": [{"name": "jsonl", "path": str(a)}]}).equals(load_mix(
        TrainingMix(sources=[SourceSpec(name="jsonl", path=str(a))])))


# --- strong_weak_pairs -----------------------------------------------------------------------------


def _table(strong, weak, other=()):
    ratings = {m: 1500.0 - i for i, m in enumerate([*strong, *weak, *other])}
    tiers = {**{m: 0 for m in strong}, **{m: 1 for m in weak}, **{m: 2 for m in other}}
    return TierTable.from_dict({"ratings": ratings, "tiers": tiers})


def test_pairs_are_oriented_from_the_strong_side():
    df = synthetic_preferences(n_prompts=200, seed=5)
    df.loc[0, ["model_a", "model_b", "p_b_wins", "tie"]] = [STRONG_MODELS[0], WEAK_MODELS[0], 0.3, False]
    out = strong_weak_pairs(df, _table(STRONG_MODELS, WEAK_MODELS), strong_tiers=(0,), weak_tiers=(1,))
    assert list(out.columns) == PAIR_COLUMNS
    sw = df["model_a"].isin(STRONG_MODELS) & df["model_b"].isin(WEAK_MODELS)
    ws = df["model_a"].isin(WEAK_MODELS) & df["model_b"].isin(STRONG_MODELS)
    assert len(out) == int((sw | ws).sum()) == 200  # one strong-vs-weak battle per prompt
    expected = np.where(sw[sw | ws], 1 - df["p_b_wins"][sw | ws], df["p_b_wins"][sw | ws])
    np.testing.assert_allclose(out["p_strong"], expected)
    assert out["p_strong"][0] == pytest.approx(0.7) and out["label"][0] == "strong"
    lab = np.where(df["tie"][sw | ws], "tie", np.where(expected > 0.5, "strong", "weak"))
    assert out["label"].tolist() == lab.tolist()


def test_pairs_with_explicit_models_and_errors():
    df = synthetic_preferences(n_prompts=100, seed=6)
    out = strong_weak_pairs(df, strong_models=[STRONG_MODELS[0]], weak_models=[WEAK_MODELS[1]])
    pair = {STRONG_MODELS[0], WEAK_MODELS[1]}
    n = sum({a, b} == pair for a, b in zip(df["model_a"], df["model_b"]))
    assert len(out) == n > 0
    with pytest.raises(ConfigError, match="both the strong and the weak"):
        strong_weak_pairs(df, strong_models=STRONG_MODELS, weak_models=[STRONG_MODELS[0]])
    with pytest.raises(ConfigError, match="TierTable"):
        strong_weak_pairs(df)
    with pytest.raises(ConfigError, match="non-empty list"):
        strong_weak_pairs(df, strong_models="gpt-4", weak_models=["x"])
    with pytest.raises(ConfigError, match="tier 5 does not exist"):
        strong_weak_pairs(df, _table(STRONG_MODELS, WEAK_MODELS), weak_tiers=(5,))


# --- train_val_split -------------------------------------------------------------------------------


def test_split_by_prompt_is_disjoint_and_deterministic():
    df = synthetic_preferences(n_prompts=300, seed=7)
    tr, va = train_val_split(df, val_fraction=0.1, seed=3)
    assert len(tr) + len(va) == len(df)
    assert not set(tr["prompt"]) & set(va["prompt"])
    n_prompts = df["prompt"].nunique()
    assert va["prompt"].nunique() == round(0.1 * n_prompts)
    tr2, va2 = train_val_split(df.sample(frac=1.0, random_state=0), val_fraction=0.1, seed=3)
    assert set(va2["prompt"]) == set(va["prompt"])  # independent of row order
    _, va3 = train_val_split(df, val_fraction=0.1, seed=4)
    assert set(va3["prompt"]) != set(va["prompt"])
    with pytest.raises(ConfigError, match="val_fraction"):
        train_val_split(df, val_fraction=1.0)


# --- the real default mix --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_mix(shared_data):
    mix = TrainingMix(sources=[SourceSpec(name="alpaca_eval", path=str(shared_data / "preferences/alpaca_eval")),
                               SourceSpec(name="routerbench", path=str(shared_data / "preferences/routerbench"))])
    df = load_mix(mix)
    return df, compute_tiers(df)


def test_real_default_mix_gives_strong_weak_rows(real_mix):
    df, table = real_mix
    assert set(df["source"]) == {"alpaca_eval", "routerbench"}
    out = strong_weak_pairs(df, table)
    assert set(out["source"]) == {"alpaca_eval", "routerbench"}
    assert {"strong", "weak", "tie"} <= set(out["label"])
    assert (out["label"] == "strong").sum() > (out["label"] == "weak").sum()  # strong wins more often
    # Mixtral's tier is reachable by config, and gpt-4 vs Mixtral directly equals the raw pair count
    assert len(strong_weak_pairs(df, table, weak_tiers=(table.tier_of(WEAK_DEFAULT),))) > 0
    direct = strong_weak_pairs(df, strong_models=[STRONG_DEFAULT], weak_models=["mistralai/mixtral-8x7b-chat"])
    pair = ((df["model_a"] == STRONG_DEFAULT) & (df["model_b"] == WEAK_DEFAULT)) | (
        (df["model_b"] == STRONG_DEFAULT) & (df["model_a"] == WEAK_DEFAULT))
    assert len(direct) == int(pair.sum()) > 1000
    with pytest.raises(UnknownModelError, match="not-a-model"):
        table.tier_of("not-a-model")
