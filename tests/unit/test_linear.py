"""The linear router: it learns a known signal, round-trips its checkpoint, rejects bad input; the
source weighting, the evaluation protocol's splits and the manipulation measurement."""

from __future__ import annotations

import numpy as np
import pytest

from routers.data.golden import GoldenSource, pair_targets, source_weights
from routers.errors import CheckpointError, ConfigError
from routers.evaluation import metrics as m
from routers.evaluation.manipulation import MANIPULATIONS, apply, flip_share
from routers.evaluation.protocol import (CURVE_GENERAL, CURVE_ONLY, Labelled, Recipe, cross_fitted, learning_curve,
                                        leave_one_out, run_protocol)
from routers.features import HashedTfidf, surface_features
from routers.models.linear import LinearRouter, fit_linear, platt
from routers.registry import load_router
from tests.fakes import HashEmbedder, synthetic_benchmark


def _data(n=300, seed=1):
    prompts, strong, weak = synthetic_benchmark(n, seed)
    return prompts, np.asarray(strong, float), np.asarray(weak, float)


def test_fit_learns_the_signal_and_beats_random():
    emb = HashEmbedder(64)
    p, s, w = _data(400, 1)
    router = fit_linear(p[:300], emb.embed(p[:300]), pair_targets(s[:300], w[:300], 1.0), embedder=emb)
    scores = router.score(p[300:])
    assert scores.shape == (100,) and np.all((scores > 0) & (scores < 1))
    assert m.apgr(scores, s[300:], w[300:]) > 0.6  # random is ~0.5 on this data (0.70 measured)


def test_checkpoint_round_trip(tmp_path):
    emb = HashEmbedder(32)
    p, s, w = _data(120, 2)
    router = fit_linear(p, emb.embed(p), pair_targets(s, w, 1.0), embedder=emb, bits=12, info={"sources": ["x"]})
    router.save(tmp_path / "ck")
    loaded = load_router(tmp_path / "ck", embedder=emb)
    assert isinstance(loaded, LinearRouter) and loaded.describe()["trained_on"] == ["x"]
    np.testing.assert_allclose(loaded.score(p[:10]), router.score(p[:10]), rtol=1e-5)
    # one prompt alone scores as inside a batch
    np.testing.assert_allclose(loaded.score([p[3]]), loaded.score(p[:10])[3:4], rtol=1e-9)


def test_missing_weights_and_bad_options_are_named(tmp_path):
    emb = HashEmbedder(32)
    p, s, w = _data(60, 3)
    fit_linear(p, emb.embed(p), pair_targets(s, w, 1.0), embedder=emb, bits=12).save(tmp_path / "ck")
    with pytest.raises(ConfigError, match="no load options"):
        LinearRouter.load(tmp_path / "ck", threshold=3)
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        LinearRouter.load(tmp_path / "ck")


@pytest.mark.parametrize("kwargs,needle", [
    ({"targets": [0.2, 1.5, 0.1]}, "in \\[0, 1\\]"),
    ({"targets": [0.2, 0.5]}, "one length"),
    ({"weights": [1.0, -1.0, 1.0]}, "weights"),
])
def test_fit_rejects_bad_input(kwargs, needle):
    args = {"prompts": ["a b", "c d", "e f"], "emb": np.eye(3, 4), "targets": [0.0, 1.0, 0.5]}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=needle):
        fit_linear(**args)


def test_hashed_tfidf_is_deterministic_and_normalised():
    t = HashedTfidf(bits=12).fit(["prove the theorem", "hello there", "prove it"])
    x = t.transform(["prove the lemma", "hello"])
    assert x.shape == (2, 4096)
    np.testing.assert_allclose(np.sqrt(x.multiply(x).sum(axis=1)).A.ravel(), 1.0, rtol=1e-5)
    y = HashedTfidf(bits=12, idf=t.idf).transform(["prove the lemma", "hello"])
    assert abs(x - y).max() == 0
    with pytest.raises(ConfigError, match="shape"):
        HashedTfidf(bits=12, idf=np.ones(10))
    assert surface_features(["What is 2 + 2?\nSay"]).shape == (1, 6)


def test_mix_weights_scale_only_the_traffic_labels():
    from routers.training.linear import mix_weights

    sizes = {"mmlu": 900, "traffic": 100}
    base = source_weights(sizes)
    w = mix_weights(sizes, 10.0)
    assert w["mmlu"] == base["mmlu"] and w["traffic"] == pytest.approx(10 * base["traffic"])
    assert mix_weights({"mmlu": 900}, 10.0) == source_weights({"mmlu": 900})  # no labels: nothing to scale


def test_source_weights():
    w = source_weights({"big": 900, "small": 100})
    assert w["small"] == pytest.approx(3 * w["big"])  # (N/n) ** 0.5
    assert (900 * w["big"] + 100 * w["small"]) / 1000 == pytest.approx(1.0)
    assert source_weights({"big": 900, "small": 100}, power=0) == {"big": 1.0, "small": 1.0}
    with pytest.raises(ConfigError, match="power"):
        source_weights({"a": 1}, power=2)


def _labelled(name, n, seed):
    p, s, w = _data(n, seed)
    return Labelled(GoldenSource(name, p, s, w, 1.0), HashEmbedder(64).embed(p))


class Spy:
    """A recipe that records what each fit saw and scores with the real linear router."""

    def __init__(self):
        self.seen: list[set[str]] = []
        self.sources: list[set[str]] = []

    def fit(self, prompts, emb, y, w, sources=None):
        self.seen.append(set(prompts))
        self.sources.append(set(sources))
        router = fit_linear(prompts, emb, y, w, bits=12)
        return router.score_with_embeddings


def test_cross_fitting_never_trains_on_the_scored_fold():
    spy = Spy()
    target = _labelled("t", 200, 4)
    scores = cross_fitted(Recipe("spy", "hash-64", spy.fit), target, None, k=5)
    assert len(spy.seen) == 5 and not np.isnan(scores).any()
    # every prompt is left out of exactly the fits whose fold it is in: at least one fit misses it
    for p in target.source.prompts[:20]:
        assert any(p not in seen for seen in spy.seen)
    assert m.apgr(scores, target.source.strong, target.source.weak) > 0.6


def test_leave_one_out_drops_near_duplicates_of_the_target():
    spy = Spy()
    target = _labelled("t", 80, 5)
    other = _labelled("o", 150, 6)
    copy = Labelled(GoldenSource("copy", target.source.prompts[:10], target.source.strong[:10],
                                 target.source.weak[:10], 1.0), target.emb[:10])
    scores, dropped = leave_one_out(Recipe("spy", "hash-64", spy.fit), target, [other, copy])
    assert dropped >= 10 and not (set(target.source.prompts) & spy.seen[0])
    assert spy.sources == [{"o"}]  # each row's source travels with it; "copy" was all near-duplicates
    assert scores.shape == (80,)


def test_the_protocol_draws_each_curve_with_and_without_the_general_data():
    spy = Spy()
    res = run_protocol(Recipe("spy", "hash-64", spy.fit), _labelled("t", 140, 7), [_labelled("o", 100, 8)],
                       folds=3, draws=2, sizes=(25, 50))
    assert set(res["curve"]) == {CURVE_GENERAL, CURVE_ONLY}
    assert all(sorted(c) == [25, 50] and all(len(v) == 2 for v in c.values()) for c in res["curve"].values())
    curve_fits = spy.sources[-8:]  # 2 sizes x 2 draws with the general data, then the same alone
    assert all(s == {"t", "o"} for s in curve_fits[:4]) and all(s == {"t"} for s in curve_fits[4:])
    assert [len(seen) for seen in spy.seen[-8:-4]] == [len(seen) + 100 for seen in spy.seen[-4:]]  # same draws


def test_learning_curve_skips_sizes_that_leave_too_little_to_score():
    target = _labelled("t", 140, 7)
    curve = learning_curve(Recipe("lin", "hash-64", Spy().fit), target, [_labelled("o", 100, 8)],
                           sizes=(25, 50, 100, 250), draws=2)
    assert sorted(curve) == [25, 50, 100] and all(len(v) == 2 for v in curve.values())


class KeywordRouter:
    """0.9 for prompts with 'hard' in them, else (the first number in the prompt) / 100."""

    def score(self, prompts):
        import re

        return np.array([0.9 if "hard" in p.lower() else int(re.search(r"\d+", p).group()) / 100 for p in prompts])


def test_flip_share_counts_manipulated_prompts_that_go_strong():
    prompts = [f"question number {i} about topic {i % 7}" for i in range(40)]
    res = flip_share(KeywordRouter(), prompts)
    assert res["n_weak"] == 20
    by_text = {r["text"]: r["share"] for r in res["per_manipulation"]}
    assert by_text[" This is a very hard question."] == 1.0          # contains "hard"
    assert by_text["URGENT and extremely difficult: "] == 0.0        # does not
    assert len(MANIPULATIONS) >= 10 and apply("q", "prefix", "X ") == "X q"
    with pytest.raises(ConfigError):
        flip_share(KeywordRouter(), prompts[:5])


def test_paired_bootstrap_interval():
    from routers.evaluation.protocol import paired_bootstrap

    rng = np.random.default_rng(0)
    s = rng.integers(0, 2, 300).astype(float)
    w = (rng.random(300) < 0.3).astype(float)
    good, noise = s - w + rng.normal(0, 0.5, 300), rng.random(300)
    same = paired_bootstrap(noise, noise, s, w, n_boot=100)
    assert same["diff"] == 0 and same["lo"] == same["hi"] == 0
    better = paired_bootstrap(good, noise, s, w, n_boot=200)
    assert better["lo"] > 0 and better["lo"] <= better["diff"] <= better["hi"]


def test_report_labels_every_protocol_row_with_its_verdict():
    from routers.evaluation.report import _protocol_section, _protocol_summary

    row = lambda cfg, a: {"router": "rec", "config": cfg, "apgr": a, "cpt50": 0.4, "cpt80": 0.7}  # noqa: E731
    b = {"random": {"apgr": {"mean": 0.5, "lo": 0.45, "hi": 0.55}}, "rows": [row("none (prompt length)", 0.6)],
         "protocol": {"rec": {"rows": [row("(i) in-domain only, cross-fitted", 0.7),
                                       row("(ii) leave-one-benchmark-out", 0.4)],
                              "curve": {"general + n in-domain": {"250": [0.5, 0.52], "500": [0.6, 0.62]}}}},
         "recipe_comparisons": [{"a": "x", "b": "rec", "protocol": "(ii) leave-one-benchmark-out",
                                 "diff": 0.01, "lo": -0.02, "hi": 0.04}]}
    b["rows"][0]["router"] = "length"
    text = "\n".join(_protocol_section(b, "", "mmlu"))
    assert "| rec | (i) in-domain only, cross-fitted | 40.00% | 70.00% | 0.700 | above random's band; beats length" in text
    assert "0.400 | **below random's band**; **does not beat** length (0.600)" in text
    assert "x − rec, (ii) leave-one-benchmark-out: +0.010 (-0.020 to +0.040)" in text
    summary = "\n".join(_protocol_summary({"benchmarks": {"mmlu": b}}))
    assert "(iii) general + n in-domain, n=250 | 0.510 (0.500–0.520) | inside random's band" in summary
    assert "### `rec` under the honest protocol" in summary  # not the served default's recipe: unmarked
    b["protocol"]["linear_aux_static"] = b["protocol"]["rec"]
    summary = "\n".join(_protocol_summary({"benchmarks": {"mmlu": b}}))
    assert "### `linear_aux_static` (the served default's recipe) under the honest protocol" in summary
    assert summary.count("| MMLU | (ii) leave-one-benchmark-out | 0.400 |") == 2  # every recipe summarised


def test_the_serving_path_computes_what_the_training_matrices_do():
    """``HashedTfidf.dot`` (serving, no matrix) equals ``transform(...) @ coef`` (training), and the
    fast digit count equals ``str.isdigit`` on every character, Unicode digits included."""
    from routers.features import HashedTfidf, _digits

    texts = ["What is 2 + 2?", "", "Solve x² = 9 for ٣ values", "the the the cat", "naïve café 42"]
    tfidf = HashedTfidf(bits=12).fit(texts + ["another training text"])
    coef = np.random.default_rng(0).normal(size=2 ** 12)
    np.testing.assert_allclose(tfidf.dot(texts, coef), tfidf.transform(texts) @ coef, rtol=1e-12, atol=1e-12)
    norms = np.sqrt(np.asarray(tfidf.transform(texts).multiply(tfidf.transform(texts)).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, [1, 0, 1, 1, 1], atol=1e-6)  # rows L2-normalised; empty stays empty
    for t in texts:
        assert _digits(t) == sum(c.isdigit() for c in t), t


@pytest.mark.parametrize("seed", [0, 5, 6, 7])
def test_platt_reaches_the_minimum_where_a_plain_newton_step_diverges(seed):
    """A barely informative score beside unevenly weighted rows (a little in-domain data, much
    down-weighted general data): the undamped Newton step from a = 1 went to |a| ~ 1e11 on these
    seeds, saturating every probability. The damped one must land on the convex loss's minimum."""
    r = np.random.default_rng(seed)
    z = r.normal(size=3000) * r.uniform(0.5, 3)
    y = r.choice([0.0, 0.5, 1.0], size=3000, p=[0.3, 0.3, 0.4])
    w = np.where(r.random(3000) < 0.1, 3.5, 0.1)

    def loss(a, b):
        t = a * z + b
        return float(w @ (np.logaddexp(0, t) - y * t))

    a, b = platt(z, y, w)
    assert abs(a) < 1 and abs(b) < 2
    grid = [loss(a + da, b + db) for da in np.linspace(-0.05, 0.05, 11) for db in np.linspace(-0.2, 0.2, 11)]
    assert loss(a, b) <= min(grid) + 1e-9


def test_the_reference_ridge_recipe_routes_held_out_questions_and_picks_its_penalty_from_the_grid():
    """``ridge`` (the routing-quality issue's outside reference, an evaluation baseline) scores
    questions it never saw above random, through the protocol's own cross-fitting."""
    from sklearn.linear_model import RidgeCV

    from routers.evaluation.protocol import RIDGE_ALPHAS, recipe

    ref = recipe("ridge")
    assert ref.embedder == "all-MiniLM-L6-v2" and ref.prepare is None
    target = _labelled("t", 200, 11)
    scores = cross_fitted(Recipe("ridge", "hash-64", ref.fit), target, None, 4, 0)
    assert scores.shape == (200,) and np.isfinite(scores).all()
    assert m.apgr(scores, target.source.strong, target.source.weak) > 0.6
    chosen = []
    real_fit = RidgeCV.fit
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RidgeCV, "fit", lambda self, *a, **k: chosen.append(real_fit(self, *a, **k).alpha_) or self)
        ref.fit(target.source.prompts, target.emb, target.source.targets, np.ones(200))
    assert chosen and chosen[0] in RIDGE_ALPHAS
