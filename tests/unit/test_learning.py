"""Learning from traffic, in-process (no Ray, no sockets): the judge protocol, labels as targets,
the promotion gate, and the ingress's collection, feedback API, shadow scoring and hot reload."""

from __future__ import annotations

import asyncio
import functools

import httpx
import numpy as np
import pandas as pd
import pytest

from deployments.chat import ServedModels
from deployments.config import AppArgs, IngressArgs, JudgeArgs, LearningArgs
from deployments.ingress import Ingress
from deployments.learning import Learning
from deployments.metrics import ServingMetrics
from deployments.protocol import RouterVerdict
from routers.learning import judge as J
from routers.learning.gate import compare, format_comparison, held_out_mask
from routers.learning.labels import feedback_target, judge_record, targets
from routers.learning.store import read_labels
from tests.fakes import EASY_WORDS, HARD_WORDS, FakeJudgeClient, HashEmbedder
from tests.fakes import FakeHandle
from tests.unit.test_deployments_ingress import Strong, Weak

# --- the judge protocol ------------------------------------------------------------------------


def test_both_orders_swap_the_answers():
    first, second = J.both_orders("q?", "STRONG", "WEAK")
    assert first[1]["content"].index("STRONG") < first[1]["content"].index("WEAK")
    assert second[1]["content"].index("WEAK") < second[1]["content"].index("STRONG")
    assert "[[A]]" in first[0]["content"] and "[[C]]" in first[0]["content"]


@pytest.mark.parametrize("v1, v2, label", [
    ("A", "B", "strong"),   # strong first, then second: both say strong
    ("B", "A", "weak"),
    ("A", "A", "tie"),      # position bias (always A): cancelled, a tie
    ("B", "B", "tie"),
    ("C", "B", "tie"),
    ("C", "C", "tie"),
])
def test_combine_counts_disagreement_as_a_tie(v1, v2, label):
    assert J.combine(v1, v2) == label


@pytest.mark.parametrize("reply", [None, "", "I like A better", "[[A]] no wait [[B]]", "[A]"])
def test_garbage_judge_output_is_an_error(reply):
    with pytest.raises(J.JudgeOutputError):
        J.parse(reply)


def test_parse_takes_the_verdict_anywhere_and_repeated():
    assert J.parse("long explanation... [[B]]") == "B" and J.parse("[[C]] final: [[C]]") == "C"


def test_feedback_targets_are_half_as_sure_as_a_judged_pair():
    assert feedback_target(1.0, answered_by_strong=False) == 0.25   # a good weak answer: strong less needed
    assert feedback_target(0.0, answered_by_strong=False) == 0.75
    assert feedback_target(1.0, answered_by_strong=True) == 0.75
    assert feedback_target(0.5, answered_by_strong=True) == 0.5


# --- the gate ----------------------------------------------------------------------------------


def _labels(n: int, signal: float, seed: int = 0, t0: float = 0.0) -> pd.DataFrame:
    """Hard prompts won by strong, easy ones tied, with probability ``signal``; otherwise a verdict
    drawn regardless of the prompt (strong 40 %, tie 40 %, weak 20 %)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hard = bool(rng.random() < 0.5)
        words = list(rng.choice(HARD_WORDS if hard else EASY_WORDS, 3)) + ["please", "explain", str(i)]
        if rng.random() < signal:
            verdict = "strong" if hard else "tie"
        else:
            verdict = str(rng.choice(["strong", "tie", "weak"], p=[0.4, 0.4, 0.2]))
        rows.append(judge_record(" ".join(words), "s", "w", verdict, request_id=str(i),
                                 router="r", p_strong=0.5, routed_model="w", now=t0 + i))
    return pd.DataFrame(rows)


def _flat(prompts):
    return np.full(len(prompts), 0.5) + np.arange(len(prompts)) * 1e-9  # a router that knows nothing


def test_the_gate_promotes_a_candidate_that_learned_the_traffic():
    res = compare(_flat, None, _labels(200, 0.95), [], HashEmbedder(64), k=5, n_boot=300)
    assert res["promote"] and res["diff_lo"] > 0 and res["candidate_apgr"] > 0.7, res
    assert "PROMOTE" in format_comparison(res)


def test_the_gate_rejects_when_the_labels_carry_no_signal():
    res = compare(_flat, None, _labels(200, 0.0, seed=3), [], HashEmbedder(64), k=5, n_boot=300)
    assert not res["promote"] and res["diff_lo"] <= 0, res
    assert "KEEP" in format_comparison(res)


def test_the_gate_scores_the_serving_router_only_on_labels_it_never_saw():
    df = _labels(100, 0.9)
    held = held_out_mask(df, {"labels": {"until": 59.0}})
    assert held.sum() == 40 and not held[:60].any()
    res = compare(_flat, {"labels": {"until": 80.0}}, df, [], HashEmbedder(64))
    assert not res["promote"] and "only 19 labels" in res["reason"]


# --- the ingress: collection, feedback, shadow, hot reload ------------------------------------


class FixedRouter:
    def __init__(self, p):
        self.p = p

    async def route(self, messages, threshold=None, strong_fraction=None):
        t = 0.5 if threshold is None else threshold
        return RouterVerdict(p_strong=self.p, threshold=t, strong=self.p >= t)


def _ingress(tmp_path, judge_replies=(), clock=None, **learning):
    args = LearningArgs(**{"collect": True, "feedback": True, "sample_rate": 1.0, "store": str(tmp_path),
                           "judge": JudgeArgs(base_url="http://judge.invalid/v1", model="judge"), **learning})
    judge = FakeJudgeClient(judge_replies)
    extra = {"clock": clock} if clock else {}
    factory = functools.partial(Learning, judge_client_factory=lambda *a: judge, **extra)
    ing = Ingress({"r": FakeHandle(FixedRouter(0.2))}, FakeHandle(Weak()), FakeHandle(Strong()),
                  models=ServedModels(strong="strong", weak="weak", default_router="r",
                                      prices_usd_per_1m={"strong": (10.0, 30.0)}),
                  args=IngressArgs(api_keys_env=None), metrics=ServingMetrics(export=False), learning=args,
                  learning_factory=factory)
    return ing, judge


def _run(ing, calls):
    """POST each (path, body, headers) in one event loop, then wait for the collections in flight."""
    async def go():
        out = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ing.build_asgi_app()), base_url="http://t") as c:
            for path, body, headers in calls:
                out.append(await (c.post(path, json=body, headers=headers) if not isinstance(body, bytes)
                                  else c.post(path, content=body, headers={"content-type": "application/json"})))
                await ing.learning.drain()
        return out

    return asyncio.run(go())


CHAT = ("/v1/chat/completions", {"model": "router-r-0.5", "messages": [{"role": "user", "content": "prove it, please"}]},
        {"x-request-id": "req-1"})


def test_a_sampled_answer_is_judged_in_both_orders_and_stored(tmp_path):
    ing, judge = _ingress(tmp_path, judge_replies=["... [[A]]", "... [[B]]"])  # strong wins both ways
    (r,) = _run(ing, [CHAT])
    assert r.status_code == 200 and r.json()["model"] == "weak"
    df = read_labels(tmp_path)
    assert len(df) == 1 and df.loc[0, "p_b_wins"] == 0.0 and df.loc[0, "request_id"] == "req-1"
    assert df.loc[0, "routed_model"] == "weak" and df.loc[0, "p_strong"] == 0.2 and df.loc[0, "kind"] == "judge"
    assert targets(df).tolist() == [1.0]
    a1, a2 = judge.calls[0][1]["content"], judge.calls[1][1]["content"]
    assert a1.index("strong answer") < a1.index("weak answer") and a2.index("weak answer") < a2.index("strong answer")
    snap = ing.metrics.snapshot()["learning"]
    assert snap["labels"] == {"judge": 1} and snap["judge_calls"] == 2
    assert snap["label_spend_usd"] == pytest.approx((3 * 10 + 2 * 30) / 1e6 + 2 * (1000 * 2.5 + 100 * 10) / 1e6)


@pytest.mark.parametrize("replies, reason", [(["[[A]]", "no verdict"], "garbage"),
                                              ([RuntimeError("judge down")], "error")])
def test_judge_failures_are_counted_never_fatal(tmp_path, replies, reason):
    ing, _ = _ingress(tmp_path, judge_replies=replies)
    (r,) = _run(ing, [CHAT])
    assert r.status_code == 200
    assert ing.metrics.snapshot()["learning"]["judge_failures"] == {reason: 1}
    assert not list(tmp_path.glob("date=*/*.jsonl"))


def test_the_budget_and_the_sample_rate_cap_collection(tmp_path):
    ing, judge = _ingress(tmp_path, judge_replies=["[[C]]"] * 20, budget_usd_per_hour=0.004)
    _run(ing, [CHAT] * 4)  # each label costs ~0.0071 $: the first one spends the hour's budget
    snap = ing.metrics.snapshot()["learning"]
    assert snap["labels"] == {"judge": 1} and snap["label_skips"] == {"budget": 3}
    ing0, judge0 = _ingress(tmp_path / "none", sample_rate=0.0)
    _run(ing0, [CHAT] * 3)
    assert not judge0.calls and ing0.metrics.snapshot()["learning"]["labels"] == {}


def test_collection_and_feedback_are_off_by_default_and_store_nothing(tmp_path):
    assert not AppArgs().learning.collect and not AppArgs().learning.feedback
    ing = Ingress({"r": FakeHandle(FixedRouter(0.2))}, FakeHandle(Weak()), FakeHandle(Strong()),
                  models=ServedModels(strong="strong", weak="weak", default_router="r"),
                  args=IngressArgs(api_keys_env=None), metrics=ServingMetrics(export=False))
    r1, r2 = _run(ing, [CHAT, ("/v1/feedback", {"request_id": "req-1", "verdict": "up"}, {})])
    assert r1.status_code == 200 and r2.status_code == 404 and r2.json()["error"]["code"] == "feedback_disabled"


def test_learning_collect_needs_a_judge():
    with pytest.raises(ValueError, match="needs learning.judge"):
        LearningArgs(collect=True)


def test_feedback_becomes_a_soft_label_once(tmp_path):
    ing, _ = _ingress(tmp_path, collect=False)
    fb = ("/v1/feedback", {"request_id": "req-1", "verdict": "up"}, {})
    r0, r1, r2 = _run(ing, [CHAT, fb, fb])
    assert r1.status_code == 200 and r1.json()["recorded"] is True
    assert r2.status_code == 409 and r2.json()["error"]["code"] == "duplicate_feedback"
    df = read_labels(tmp_path)
    assert df["kind"].tolist() == ["feedback"] and targets(df).tolist() == [0.25]  # a good weak answer


@pytest.mark.parametrize("body, status, code", [
    ({"request_id": "nope", "verdict": "up"}, 404, "unknown_request_id"),
    ({"request_id": "req-1", "verdict": "meh"}, 400, "invalid_value"),
    ({"request_id": "req-1", "score": 1.5}, 400, "invalid_value"),
    ({"request_id": "req-1", "score": 1.0, "verdict": "up"}, 400, "invalid_request"),
    ({"request_id": "req-1"}, 400, "invalid_request"),
    ({"request_id": "req-1", "verdict": "up", "extra": 1}, 400, "invalid_value"),
    ({"request_id": "req 1;drop", "verdict": "up"}, 400, "invalid_value"),
    ({"request_id": "req-1", "verdict": "up", "pad": "x" * 5000}, 413, "request_too_large"),
])
def test_bad_feedback_gets_a_clear_4xx_in_the_openai_shape(tmp_path, body, status, code):
    ing, _ = _ingress(tmp_path, collect=False)
    _, r = _run(ing, [CHAT, ("/v1/feedback", body, {})])
    err = r.json()["error"]
    assert r.status_code == status and err["code"] == code and err["message"], r.json()
    assert set(err) == {"message", "type", "param", "code"}
    if status == 413:
        assert "learning.feedback_max_body_bytes" in err["message"]


def test_expired_feedback_is_a_404(tmp_path):
    now = [1000.0]
    ing, _ = _ingress(tmp_path, collect=False, clock=lambda: now[0], feedback_ttl_s=60)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ing.build_asgi_app()), base_url="http://t") as c:
            await c.post(CHAT[0], json=CHAT[1], headers=CHAT[2])
            now[0] += 61
            return await c.post("/v1/feedback", json={"request_id": "req-1", "score": 0.0})

    r = asyncio.run(go())
    assert r.status_code == 404 and r.json()["error"]["code"] == "request_id_expired"


def test_feedback_needs_the_same_auth_as_chat(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_KEYS", "k1")
    ing, _ = _ingress(tmp_path, collect=False)
    ing.auth = type(ing.auth)("TEST_KEYS")
    _, r = _run(ing, [(*CHAT[:2], {"x-request-id": "a", "authorization": "Bearer k1"}),
                      ("/v1/feedback", {"request_id": "a", "verdict": "up"}, {})])
    assert r.status_code == 401


def test_hot_reload_of_an_in_process_router_and_shadow_scoring(tmp_path):
    from deployments.router_replica import InProcessRouter

    local = {"r": InProcessRouter("r", {"source": "length", "default_threshold": 0.5})}
    ing = Ingress({}, FakeHandle(Weak()), FakeHandle(Strong()),
                  models=ServedModels(strong="strong", weak="weak", default_router="r"),
                  args=IngressArgs(api_keys_env=None), local_routers=local, metrics=ServingMetrics(export=False))
    assert ing.metrics.snapshot()["router_versions"] == {"r": "length"}
    asyncio.run(ing.reconfigure({"routers": {"r": {"source": "length", "default_threshold": 0.5}}}))
    assert ing.metrics.snapshot()["router_reloads"] == {}  # unchanged config: no reload
    asyncio.run(ing.reconfigure({"routers": {"r": {"source": "random", "kwargs": {"seed": 1}}},
                                 "shadow": {"r": {"source": "length", "threshold": 0.0}}}))
    snap = ing.metrics.snapshot()
    assert snap["router_versions"] == {"r": "random"} and snap["router_reloads"] == {"r": 1}
    assert ing.service.routers["r"]._replica._router.name == "random"
    assert ing.learning.shadows["r"][1] == 0.0 and ing.learning.shadows["r"][0]._replica._router.name == "length"
    with pytest.raises(ValueError, match="not placed in the ingress"):
        asyncio.run(ing.reconfigure({"routers": {"elsewhere": {}}}))
    with pytest.raises(ValueError, match="shadow no served router"):
        asyncio.run(ing.reconfigure({"shadow": {"ghost": {"source": "length"}}}))


def test_a_shadow_router_scores_live_traffic_without_changing_it(tmp_path):
    ing, _ = _ingress(tmp_path, collect=False, feedback=False)
    ing.learning.shadows = {"r": (FakeHandle(FixedRouter(0.9)), 0.5)}  # would send everything strong
    rs = _run(ing, [CHAT, CHAT, CHAT])
    assert all(r.json()["model"] == "weak" for r in rs)  # the serving router (p 0.2) decides
    shadow = ing.metrics.snapshot()["learning"]["shadow"]["r"]
    assert shadow == {"decisions": 3, "agree": 0, "would_strong": 3, "agreement": 0.0, "would_strong_fraction": 1.0}


# --- the commands -------------------------------------------------------------------------------


def _store_with(tmp_path, df: pd.DataFrame):
    from routers.learning.store import LabelWriter

    w = LabelWriter(tmp_path / "labels")
    for rec in df.to_dict("records"):
        w.append(rec)
    return str(tmp_path / "labels")


def test_promote_dry_run_prints_the_comparison_and_changes_nothing(tmp_path, capsys, monkeypatch):
    import yaml

    from cli.main import main
    from routers.embeddings import embedder_from_spec

    monkeypatch.setattr("routers.embeddings.embedder_from_spec", lambda spec, **k: HashEmbedder(64))
    store = _store_with(tmp_path, _labels(120, 0.95))
    cfg = {"applications": [{"name": "rayroute", "import_path": "deployments.app:build_app",
                             "args": {"routers": [{"alias": "r", "source": "length", "placement": "ingress"}]}}]}
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(cfg))
    rc = main(["promote", "--dry-run", "--labels", store, "--router", "r", "--config", str(tmp_path / "serve.yaml"),
               "--sources", "", "--json", str(tmp_path / "gate.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "serving   APGR" in out and "candidate APGR" in out and "one-sided 95 % bound" in out
    assert "PROMOTE" in out  # the length router knows nothing of these labels
    assert not (tmp_path / "labels" / "routers").exists()  # a dry run trains and writes no checkpoint
    import json

    gate = json.loads((tmp_path / "gate.json").read_text())
    assert gate["dry_run"] is True and gate["promote"] is True and gate["held_out"] == 120
    from deployments.promotion import promotion_counts

    assert promotion_counts(store) == {"would promote": 1}
    assert embedder_from_spec is not None


def test_promote_and_shadow_act_on_the_served_default_unless_told_otherwise():
    import argparse

    from cli.learn import _router_alias
    from routers.errors import ConfigError

    routers = [{"alias": "a", "source": "length", "placement": "ingress"},
               {"alias": "b", "source": "length", "placement": "ingress"}]
    cfg = {"applications": [{"name": "rayroute", "args": {"routers": routers, "default_router": "b"}}]}
    assert _router_alias(argparse.Namespace(router=None, app="rayroute"), cfg) == "b"
    assert _router_alias(argparse.Namespace(router="a", app="rayroute"), cfg) == "a"
    cfg["applications"][0]["args"].pop("default_router")  # none named: the app's own rule, the first router
    assert _router_alias(argparse.Namespace(router=None, app="rayroute"), cfg) == "a"
    with pytest.raises(ConfigError, match="no application 'other'"):
        _router_alias(argparse.Namespace(router=None, app="other"), cfg)


def test_promoted_config_changes_only_the_user_config(tmp_path):
    from deployments.promotion import current_source, promoted_config
    from routers.models.linear import fit_linear

    emb = HashEmbedder(16)
    prompts = [f"question number {i} about integrals" for i in range(10)]
    fit_linear(prompts, emb.embed(prompts), np.linspace(0, 1, 10), embedder_name="hash-16").save(tmp_path / "v2")
    cfg = {"applications": [{"name": "app", "import_path": "deployments.app:build_app",
                             "args": {"routers": [{"alias": "a", "source": "length", "placement": "ingress"},
                                                  {"alias": "b", "source": "random"}]}}]}
    out = promoted_config(cfg, "app", "a", tmp_path / "v2")
    out = promoted_config(out, "app", "b", tmp_path / "v2")
    assert out["applications"][0]["args"] == cfg["applications"][0]["args"]
    deps = {d["name"]: d["user_config"] for d in out["applications"][0]["deployments"]}
    assert deps["Ingress"]["routers"]["a"]["source"] == str((tmp_path / "v2").resolve())
    assert deps["Router_b"]["source"] == str((tmp_path / "v2").resolve())
    assert current_source(out, "app", "a") == str((tmp_path / "v2").resolve())
    from routers.errors import ConfigError

    with pytest.raises(ConfigError, match="not a router checkpoint"):
        promoted_config(cfg, "app", "a", tmp_path)
    with pytest.raises(ConfigError, match="not served"):
        promoted_config(cfg, "app", "zz", tmp_path / "v2")


def test_train_linear_with_labels_records_what_it_learned_from(tmp_path):
    from routers.registry import load_router
    from routers.training.linear import train_linear

    store = _store_with(tmp_path, _labels(60, 0.95))
    train_linear(tmp_path / "ckpt", embedder=HashEmbedder(32), sources=[], labels=store, val_fraction=0.0)
    r = load_router(tmp_path / "ckpt")
    assert r.info["sources"] == ["traffic"] and r.info["labels"]["count"] == 60
    assert r.info["labels"]["until"] == 59.0


def test_the_labels_command_summarises_a_store(tmp_path, capsys):
    import json

    from cli.main import main

    store = _store_with(tmp_path, _labels(20, 1.0))
    assert main(["labels", store]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 20 and out["kinds"] == {"judge": 20} and out["torn_tails_skipped"] == 0
    assert out["strong_better"] + out["ties"] + out["weak_better"] == 20 and out["weak_better"] == 0
