"""The linear_aux router: its aux data never includes the evaluation target, β follows the feature
that transfers across sources, the checkpoint round-trips, bad input is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from routers.data.aux_targets import DIFFICULTY_CLAIMS, AuxSet, load_aux, load_reasoning_steps, solution_steps, with_claims
from routers.data.golden import GoldenSource, pair_targets
from routers.errors import ConfigError
from routers.evaluation import metrics as m
from routers.evaluation import protocol
from routers.evaluation.protocol import Labelled, leave_one_out, recipe
from routers.models.linear_aux import LinearAuxRouter, choose_beta, fit_aux, fit_linear_aux
from routers.registry import load_router
from tests.fakes import EASY_WORDS, FILLER, HARD_WORDS, HashEmbedder

EMB = HashEmbedder(64)


def _prompts(rng, n, hard_words, easy_words=EASY_WORDS):
    """Prompts with a 0/1 hardness: hard ones contain two of ``hard_words``."""
    hard = rng.random(n) < 0.5
    out = []
    for h in hard:
        topic = rng.choice(hard_words if h else easy_words, size=2, replace=False)
        out.append(" ".join([*rng.choice(FILLER, size=3), topic[0], *rng.choice(FILLER, size=3), topic[1]]) + "?")
    return out, hard


def _outcomes(rng, hard):
    """Strong right 90 %; weak right 85 % on easy, 30 % on hard prompts."""
    strong = (rng.random(len(hard)) < 0.9).astype(float)
    weak = (rng.random(len(hard)) < np.where(hard, 0.3, 0.85)).astype(float)
    return strong, weak


def test_solution_steps_and_loading(tmp_path):
    assert solution_steps("a = 1\n\nb = <<1+1=2>>2\n#### 2") == 2
    path = tmp_path / "benchmarks" / "gsm8k"
    path.mkdir(parents=True)
    (path / "train.jsonl").write_text(json.dumps({"question": "q?", "answer": "x\ny\nz\n#### 3"}) + "\n")
    steps = load_reasoning_steps(tmp_path)
    assert steps.prompts == ["q?"] and steps.values[0] == pytest.approx(np.log(4))
    assert len(steps.without("gsm8k")) == 0 and len(steps.without("mmlu")) == 1


def test_claim_copies_keep_the_target_and_are_worded_apart_from_the_measurement(tmp_path):
    from routers.evaluation.manipulation import MANIPULATIONS

    data = AuxSet("steps", ["q one?", "q two?", "q three?"], np.array([0.1, 0.5, 0.9]), np.array(["a", "b", "a"]))
    out = with_claims(data, seed=1)
    assert len(out) == 6 and out.prompts[:3] == data.prompts
    np.testing.assert_array_equal(out.values, np.tile(data.values, 2))
    np.testing.assert_array_equal(out.families, np.tile(data.families, 2))
    claimed = {text.strip() for _, text in DIFFICULTY_CLAIMS}
    for orig, copy in zip(data.prompts, out.prompts[3:]):
        assert copy != orig and orig in copy and copy.replace(orig, "").strip() in claimed
    # the measurement's texts are never trained on (routers.evaluation.manipulation)
    assert not claimed & {text.strip() for _, text in MANIPULATIONS}
    assert len(out.without("gsm8k")) == 6  # families travel with the copies
    path = tmp_path / "benchmarks" / "gsm8k"
    path.mkdir(parents=True)
    (path / "train.jsonl").write_text(json.dumps({"question": "q?", "answer": "x\n#### 3"}) + "\n")
    assert len(load_aux("steps", tmp_path)) == 2 and len(load_aux("steps", tmp_path, claims=False)) == 1


def test_choose_beta_follows_the_feature_that_carries_the_gain():
    rng = np.random.default_rng(0)
    y = rng.choice([0.0, 0.5, 1.0], size=600)
    oof = rng.normal(size=600)  # an uninformative out-of-fold decision
    signal, noise = (2 * y - 1) + 0.5 * rng.normal(size=600), rng.normal(size=600)
    folds = np.arange(600) % 3
    beta = choose_beta(oof, np.c_[signal, noise], y, folds)
    assert beta[0] > 0 and abs(beta[1]) < beta[0]
    assert choose_beta(oof, -signal[:, None], y, folds)[0] < 0
    assert choose_beta(oof + 100 * (2 * y - 1), noise[:, None], y, folds) == (0.0,)  # ties: smallest |β|


def test_fit_aux_learns_and_never_trains_on_near_duplicates_of_the_target():
    rng = np.random.default_rng(1)
    prompts, hard = _prompts(rng, 300, HARD_WORDS)
    data = AuxSet("difficulty", prompts, np.where(hard, 0.2, 0.9), np.full(300, "open7:x"))
    emb = EMB.embed(prompts)
    a = fit_aux(data, emb)
    assert np.corrcoef(a(prompts, emb), hard)[0, 1] < -0.8  # hard prompts: low mean correctness
    with pytest.raises(ConfigError, match="rows left"):
        fit_aux(data, emb, avoid_emb=emb)  # every row is a near-duplicate of the target
    with pytest.raises(ConfigError, match="-dim embeddings"):
        a(prompts[:2], emb[:2, :10])


def test_a_near_duplicate_question_leaves_with_its_claim_augmented_copy():
    data = with_claims(AuxSet("steps", [f"question {i}?" for i in range(6)], np.linspace(0, 1, 6), np.full(6, "a")))
    emb = np.eye(12, 16)  # every row its own direction: a copy is no near-duplicate of anything
    fit_aux(data, emb, avoid_emb=emb[[0]])  # question 0's original is the target's: 10 rows left, enough
    with pytest.raises(ConfigError, match="8 rows left"):  # questions 0 and 1 go with their copies (rows 6, 7)
        fit_aux(data, emb, avoid_emb=emb[[0, 1]])
    np.testing.assert_array_equal(data.questions, np.tile(np.arange(6), 2))
    np.testing.assert_array_equal(data.subset(np.arange(12) >= 5).questions, [5, 0, 1, 2, 3, 4, 5])


def _two_sources(seed):
    """Two golden sources whose hard prompts use disjoint words: a router trained on one does not
    transfer to the other, while the aux feature (trained on both word lists) does."""
    rng = np.random.default_rng(seed)
    half = len(HARD_WORDS) // 2
    pa, ha = _prompts(rng, 250, HARD_WORDS[:half], EASY_WORDS[:7])
    pb, hb = _prompts(rng, 250, HARD_WORDS[half:], EASY_WORDS[7:])
    prompts, hard = pa + pb, np.r_[ha, hb]
    strong, weak = _outcomes(rng, hard)
    aux_p, aux_h = _prompts(rng, 400, HARD_WORDS)
    aux = fit_aux(AuxSet("difficulty", aux_p, np.where(aux_h, 0.2, 0.9), np.full(400, "open7:x")), EMB.embed(aux_p))
    return prompts, strong, weak, np.array(["a"] * 250 + ["b"] * 250), aux


def test_beta_is_chosen_by_leave_one_source_out_and_the_checkpoint_round_trips(tmp_path, monkeypatch):
    import routers.models.linear_aux as la

    prompts, strong, weak, sources, aux = _two_sources(2)
    emb = EMB.embed(prompts)
    folds_seen = []
    real = la.choose_beta
    monkeypatch.setattr(la, "choose_beta",
                        lambda oof, f, y, folds, *a: folds_seen.append(folds) or real(oof, f, y, folds))
    router = fit_linear_aux(prompts, emb, pair_targets(strong, weak, 1.0), None, sources, [aux], bits=12,
                            embedder=EMB, info={"sources": ["a", "b"]})
    assert router.beta[0] < 0  # harder (lower predicted correctness) -> strong
    assert router.info["beta_folds"] == "leave-one-source-out"
    np.testing.assert_array_equal(folds_seen[0], (sources == "b").astype(int))  # the folds are the sources
    new, new_strong, new_weak, _, _ = _two_sources(12)  # fresh prompts of the same kind
    scores = router.score(new)
    assert np.all((scores > 0) & (scores < 1)) and m.apgr(scores, new_strong, new_weak) > 0.6
    router.save(tmp_path / "ck")
    loaded = load_router(tmp_path / "ck", embedder=EMB)
    assert isinstance(loaded, LinearAuxRouter) and loaded.describe()["aux"] == ["difficulty"]
    np.testing.assert_allclose(loaded.score(new[:20]), scores[:20], rtol=1e-5)
    with pytest.raises(ConfigError, match="no load options"):
        LinearAuxRouter.load(tmp_path / "ck", threshold=0.3)
    with pytest.raises(ConfigError, match="source names"):
        fit_linear_aux(prompts, emb, pair_targets(strong, weak, 1.0), None, sources[:3], [aux], bits=12)


def test_the_recipe_never_gives_its_aux_features_the_target_benchmark(monkeypatch):
    """For GSM8K, the GSM8K-train families are removed before any aux fit, and what is left is
    fitted avoiding near-duplicates of the target's prompts."""
    prompts, strong, weak, sources, _ = _two_sources(3)
    rng = np.random.default_rng(3)
    extra, hard = _prompts(rng, 200, HARD_WORDS)
    sets = {"difficulty": AuxSet("difficulty", extra + prompts[:50], np.r_[np.where(hard, 0.2, 0.9), np.ones(50)],
                                 np.array(["open7:x"] * 200 + ["open7:gsm8k-train"] * 50)),
            "steps": AuxSet("steps", prompts[:40], np.ones(40), np.full(40, "gsm8k:train"))}
    monkeypatch.setattr("routers.data.aux_targets.load_aux", lambda kind, data_dir=None: sets[kind])
    monkeypatch.setattr(protocol, "_AUX_CACHE", {})
    seen = []

    def spy(data, emb, avoid_emb=None, **kw):
        seen.append((data, avoid_emb))
        return fit_aux(data, emb, avoid_emb=avoid_emb, **kw)

    monkeypatch.setattr("routers.models.linear_aux.fit_aux", spy)
    target = Labelled(GoldenSource("gsm8k", prompts[:250], strong[:250], weak[:250], 1.0), EMB.embed(prompts[:250]))
    other = Labelled(GoldenSource("other", prompts[250:], strong[250:], weak[250:], 1.0), EMB.embed(prompts[250:]))
    scores, _ = leave_one_out(recipe("linear_aux_static").for_target(target, EMB), target, [other])
    assert scores.shape == (250,)
    assert [d.kind for d, _ in seen] == ["difficulty"]  # steps: wholly GSM8K, left out
    data, avoid = seen[0]
    assert set(data.families) == {"open7:x"} and avoid is target.emb
    with pytest.raises(ConfigError, match="for_target"):
        recipe("linear_aux_static").fit(prompts, target.emb, strong, weak, None)


def test_rayroute_train_linear_aux_writes_a_checkpoint_that_routes(monkeypatch, tmp_path, capsys):
    import cli.main
    from cli.main import main

    monkeypatch.setattr(cli.main, "COMMAND_MODULES", ("cli.train",))
    prompts, strong, weak, sources, _ = _two_sources(4)
    golden = {s: GoldenSource(s, [p for p, k in zip(prompts, sources) if k == s], strong[sources == s],
                              weak[sources == s], 1.0) for s in ("a", "b")}
    rng = np.random.default_rng(4)
    aux_p, aux_h = _prompts(rng, 300, HARD_WORDS)
    aux_set = AuxSet("difficulty", aux_p, np.where(aux_h, 0.2, 0.9), np.full(300, "open7:x"))
    monkeypatch.setattr("routers.training.linear.load_golden", lambda name, data_dir=None: golden[name])
    monkeypatch.setattr("routers.data.aux_targets.load_aux", lambda kind, data_dir=None: aux_set)
    out = tmp_path / "la"
    assert main(["train", "linear_aux", "--out", str(out), "--embedder", "hash-64", "--sources", "a,b"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("[train linear_aux]")
    router = load_router(out)
    assert isinstance(router, LinearAuxRouter) and router.describe()["trained_on"] == ["a", "b"]
    p = router.score(["Please prove the theorem about the integral?", "Hello, what is your favorite song?"])
    assert p[0] > p[1]


def test_the_served_default_is_built_by_the_recipe_the_reports_mark():
    """serve_config.yaml's default router is the checkpoint ``SERVED_DEFAULT_RECIPE`` builds: the
    evaluation report marks that recipe as the served default's, so the two must not drift apart."""
    import yaml

    from routers.evaluation.protocol import RECIPES, SERVED_DEFAULT_RECIPE
    from routers.paths import REPO_ROOT

    cfg = yaml.safe_load((REPO_ROOT / "serve_config.yaml").read_text())
    args = next(a["args"] for a in cfg["applications"] if a["name"] == "rayroute")
    default = next(r for r in args["routers"] if r["alias"] == args["default_router"])
    assert SERVED_DEFAULT_RECIPE in RECIPES
    assert Path(default["source"]).name == SERVED_DEFAULT_RECIPE


def test_the_minilm_aux_recipe_differs_from_the_served_one_only_in_its_embeddings():
    """``linear_aux`` is the served default's recipe on full MiniLM embeddings: the report's paired
    comparison of the two (results/quality-aux-minilm) is the "is the slower twin better" check,
    so the two must share the aux preparation and differ only in the embedder."""
    served, minilm = recipe("linear_aux_static"), recipe("linear_aux")
    assert served.prepare is not None and minilm.prepare is served.prepare
    assert served.embedder == "static" and minilm.embedder == "all-MiniLM-L6-v2"
    with pytest.raises(ConfigError, match="for_target"):
        minilm.fit(["a", "b"], np.zeros((2, 4)), np.array([0.0, 1.0]), np.ones(2), None)
