"""Budget control in the server, in process (no Ray): two ingress replicas share one ``BudgetState``
and hold one share together; a restarted replica resumes; dollar names and tenant caps; the
start-up errors that name the field. The router is a fake whose score is written in the prompt."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pydantic
import pytest

from deployments.budget import BudgetClient, BudgetState, resolve_prices, seconds_to_next_utc_day
from deployments.chat import ServedModels
from deployments.config import AppArgs, BudgetArgs, BudgetTargetArgs, IngressArgs
from deployments.ingress import Ingress
from deployments.metrics import ServingMetrics
from deployments.protocol import RouterVerdict, parse_model_name
from deployments import errors as E
from routers.base import strong_mask
from routers.budget import Target
from routers.errors import ConfigError
from tests.fakes import FakeHandle
from tests.unit.test_deployments_ingress import Strong, Weak


class ScoreInPrompt:
    """A router whose P(strong) is the number the user wrote (``"p=0.42"``)."""

    async def route(self, messages, threshold=None, strong_fraction=None):
        text = messages[-1]["content"] if isinstance(messages, list) else messages
        p = float(text.split("p=")[1])
        alpha = 0.5 if threshold is None else threshold
        return RouterVerdict(p_strong=p, threshold=alpha, strong=bool(strong_mask([p], alpha)[0]))


PRICES = {"strong": (1e6, 1e6), "weak": (0.0, 0.0)}  # $1 per token strong: spend is easy to count


def make_ingress(state, budget: BudgetArgs, router_budget=None, keys_env=None):
    ing = Ingress({"fake": FakeHandle(ScoreInPrompt())}, FakeHandle(Weak()), FakeHandle(Strong()),
                  models=ServedModels(strong="strong", weak="weak", default_router="fake",
                                      prices_usd_per_1m={"strong": PRICES["strong"], "weak": PRICES["weak"]}),
                  args=IngressArgs(api_keys_env=keys_env), metrics=ServingMetrics(export=False),
                  budget_state=FakeHandle(state), budget=budget, router_budgets={"fake": router_budget},
                  budget_prices=PRICES)
    ing.service.budget.autosync = False
    return ing


def budget_args(**kw) -> BudgetArgs:
    return BudgetArgs(enabled=True, **kw)


async def _chat(client, model, p, key=None):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return await client.post("/v1/chat/completions", headers=headers,
                             json={"model": model, "messages": [{"role": "user", "content": f"q p={p:.6f}"}]})


def _client(ing):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=ing.build_asgi_app()), base_url="http://t")


def test_two_replicas_hold_one_share_globally_and_a_restart_resumes():
    state = BudgetState(budget_args().model_dump(), PRICES)
    a, b = make_ingress(state, budget_args()), make_ingress(state, budget_args())
    rng = np.random.default_rng(0)
    # the traffic mix shifts half way: scores rise a lot (a static alpha would go ~80 % strong)
    scores = np.concatenate([rng.beta(2, 3, 600), rng.beta(5, 2, 600)])

    async def go():
        strong = []
        async with _client(a) as ca, _client(b) as cb:
            for i, p in enumerate(scores):
                r = await _chat(ca if i % 2 else cb, "router-fake-strong0.3", p)  # both replicas, interleaved
                assert r.status_code == 200, r.text
                strong.append(r.headers["x-routed-model"] == "strong")
                assert r.headers["x-rayroute-budget-target"] == "share=0.3"
                used = (a if i % 2 else b).service.budget.alpha("fake:-:share=0.3", Target("share", 0.3))
                assert float(r.headers["x-router-threshold"]) == pytest.approx(used, abs=1e-6)  # the α used
                if i % 4 == 3:
                    await a.service.budget.sync_once()
                    await b.service.budget.sync_once()
            # restart: a new replica with no memory of its own takes the state back at its first sync
            c = make_ingress(state, budget_args())
            await c.service.budget.sync_once()
            assert c.service.budget.alphas == {k: v["alpha"] for k, v in state.snapshot()["keys"].items()} != {}
        return np.array(strong)

    strong = asyncio.run(go())
    assert state.keys["fake:-:share=0.3"].controller.n == len(scores)  # every decision of both replicas
    gauge = a.metrics.snapshot()["budget"]
    assert gauge[0]["router"] == "fake" and gauge[0]["tenant"] == "-" and gauge[0]["target"] == "share=0.3"
    assert gauge[0]["target_share"] == 0.3 and abs(gauge[0]["realised_share"] - 0.3) < 0.05
    late = strong[700:]
    assert abs(late.mean() - 0.3) <= 0.03, late.mean()  # after the shift, both replicas together hold 30 %
    assert abs(strong.mean() - 0.3) <= 0.03


def test_router_target_holds_bare_names_and_explicit_threshold_stays_static():
    state = BudgetState(budget_args().model_dump(), PRICES)
    ing = make_ingress(state, budget_args(), router_budget=BudgetTargetArgs(strong_share=0.5))

    async def go():
        async with _client(ing) as c:
            r = await _chat(c, "router-fake", 0.9)
            assert r.headers["x-rayroute-budget-target"] == "share=0.5"
            r = await _chat(c, "router", 0.9)
            assert r.headers["x-rayroute-budget-target"] == "share=0.5"
            r = await _chat(c, "router-fake-0.95", 0.9)  # the client's own threshold: static
            assert "x-rayroute-budget-target" not in r.headers and r.headers["x-router-threshold"] == "0.95"
            assert r.headers["x-routed-model"] == "weak"
            r = await c.get("/v1/budget")
            assert r.json()["enabled"] is True

    asyncio.run(go())


def test_usd_names_parse_and_bad_values_are_400():
    assert parse_model_name("router-mf-usd40").usd_per_hour == 40.0
    assert parse_model_name("router-mf-usd0.5").usd_per_hour == 0.5
    state = BudgetState(budget_args().model_dump(), PRICES)
    ing = make_ingress(state, budget_args())

    async def go():
        async with _client(ing) as c:
            for model, code in (("router-fake-usd-5", "threshold_out_of_range"), ("router-fake-usdabc", "invalid_model_name"),
                                ("router-fake-usdinf", "threshold_out_of_range"), ("router-fake-usdnan", "threshold_out_of_range")):
                r = await _chat(c, model, 0.5)
                assert r.status_code == 400, (model, r.text)
                err = r.json()["error"]
                assert err["code"] == code and err["param"] == "model" and model[len("router-fake-usd"):] in err["message"]
            r = await _chat(c, "router-fake-usd40", 0.5)
            assert r.status_code == 200 and r.headers["x-rayroute-budget-target"] == "usd_per_hour=40"

    asyncio.run(go())


def test_usd_name_without_budget_control_is_a_clear_400():
    ing = Ingress({"fake": FakeHandle(ScoreInPrompt())}, FakeHandle(Weak()), FakeHandle(Strong()),
                  models=ServedModels(strong="strong", weak="weak", default_router="fake"),
                  args=IngressArgs(api_keys_env=None), metrics=ServingMetrics(export=False))

    async def go():
        async with _client(ing) as c:
            r = await _chat(c, "router-fake-usd40", 0.5)
            assert r.status_code == 400
            assert r.json()["error"]["code"] == "budget_control_off" and "budget.enabled" in r.json()["error"]["message"]

    asyncio.run(go())


def test_dollar_target_converts_to_a_share():
    """$/1k requests: strong costs $5 a request (5 tokens at $1), weak $0: $1,500 per 1k = 30 % strong."""
    args = budget_args()
    state = BudgetState(args.model_dump(), PRICES)
    ing = make_ingress(state, args)
    key = "fake:-:usd_per_1k_requests=1500"
    from routers.budget import Target

    async def go():
        async with _client(ing) as c:
            bc = ing.service.budget
            target = Target("usd_per_1k_requests", 1500)
            bc._labels[key], bc._targets[key] = ("fake", "-", target.label()), target
            for p in np.random.default_rng(1).random(400):
                strong = bool(strong_mask([p], bc.alpha(key, target))[0])
                bc.observe(key, target, p, strong)
                bc.record_cost(key, "strong" if strong else "weak", None, 5.0 if strong else 0.0)
                if len(bc._pending[key]["scores"]) >= 5:
                    await bc.sync_once()
        return state.snapshot()["keys"][key]

    snap = asyncio.run(go())
    assert snap["share"] == pytest.approx(0.3, abs=1e-6)
    assert snap["usd_per_strong"] == pytest.approx(5.0)


@pytest.mark.parametrize("policy", ["weak", "reject"])
def test_tenant_daily_cap(monkeypatch, policy):
    monkeypatch.setenv("TEAM_A_KEYS", "key-a")
    monkeypatch.setenv("SHARED_KEYS", "key-shared")
    args = budget_args(tenants=[{"name": "team_a", "api_keys_env": "TEAM_A_KEYS", "daily_cap_usd": 8.0,
                                 "on_cap": policy}])
    state = BudgetState(args.model_dump(), PRICES)
    ing = make_ingress(state, args, keys_env="SHARED_KEYS")

    async def go():
        async with _client(ing) as c:
            r = await _chat(c, "strong", 0.9, key="key-a")  # $5
            assert r.status_code == 200 and r.headers["x-rayroute-tenant"] == "team_a"
            r = await _chat(c, "strong", 0.9, key="key-a")  # $10 > $8: the cap is spent now
            await ing.service.budget.sync_once()
            assert state.tenant_usd["team_a"] == pytest.approx(10.0)
            r = await _chat(c, "router-fake-0.1", 0.9, key="key-a")
            if policy == "weak":
                assert r.status_code == 200 and r.headers["x-routed-model"] == "weak"
                assert r.headers["x-rayroute-budget-cap"] == "weak"
            else:
                assert r.status_code == 429
                assert r.json()["error"]["code"] == "budget_exceeded" and "team_a" in r.json()["error"]["message"]
                assert 1 <= int(r.headers["retry-after"]) <= 86401
            r = await _chat(c, "strong", 0.9, key="key-shared")  # other keys are not capped
            assert r.status_code == 200 and r.headers["x-routed-model"] == "strong"
            r = await _chat(c, "strong", 0.9, key="wrong")
            assert r.status_code == 401
        return ing.metrics.snapshot()

    snap = asyncio.run(go())
    assert snap["budget_cap_hits"] == [{"tenant": "team_a", "policy": policy, "count": 1}]
    assert {"router": "none", "tenant": "team_a", "usd": 10.0} in snap["spend_usd"]


def test_retry_after_is_the_time_to_utc_midnight():
    assert seconds_to_next_utc_day(86400 * 100 + 86399) == 2
    assert seconds_to_next_utc_day(86400 * 100) == 86401


def test_sync_failure_keeps_the_report_and_the_alpha():
    class Down:
        class sync:
            @staticmethod
            def remote(*a):
                async def fail():
                    raise ConnectionError("state replica restarting")
                return fail()

    from routers.budget import Target

    bc = BudgetClient(Down(), budget_args(), {}, PRICES, ServingMetrics(export=False))
    bc.alphas["k"] = 0.61
    t = Target("share", 0.3)
    bc._labels["k"], bc._targets["k"] = ("fake", "-", "share=0.3"), t
    bc.observe("k", t, 0.7, True)
    assert asyncio.run(bc.sync_once()) is False
    assert bc._pending["k"]["scores"] == [0.7] and bc.alpha("k", t) == 0.61


# --- start-up errors name the field -------------------------------------------------------------------


def _app_args(**kw):
    return {"routers": [{"alias": "random"}], **kw}


@pytest.mark.parametrize("bad, field", [
    ({"budget": {"enabled": True}, "routers": [{"alias": "random", "budget": {"usd_per_hour": -1}}]}, "usd_per_hour"),
    ({"budget": {"enabled": True}, "routers": [{"alias": "random", "budget": {"strong_share": 1.2}}]}, "strong_share"),
    ({"budget": {"enabled": True}, "routers": [{"alias": "random", "budget": {"strong_share": -0.1}}]}, "strong_share"),
    ({"budget": {"enabled": True, "tenants": [{"name": "a", "api_keys_env": "K", "daily_cap_usd": -3}]}}, "daily_cap_usd"),
    ({"budget": {"enabled": True}, "routers": [{"alias": "random", "budget": {"usd_per_1k_requests": -0.5}}]},
     "usd_per_1k_requests"),
    ({"routers": [{"alias": "random", "budget": {"strong_share": 0.3}}]}, "budget.enabled"),
    ({"budget": {"enabled": True}, "routers": [{"alias": "random", "budget": {"strong_share": 0.3, "usd_per_hour": 2}}]},
     "exactly one"),
    ({"budget": {"tenants": [{"name": "a", "api_keys_env": "K", "daily_cap_usd": 3}]}}, "budget.enabled"),
])
def test_bad_budget_config_names_the_field(bad, field):
    with pytest.raises(pydantic.ValidationError, match=field):
        AppArgs.model_validate(_app_args(**bad))


def test_cap_with_no_keys_is_a_startup_error_naming_the_field():
    cfg = AppArgs.model_validate(_app_args(budget={"enabled": True, "tenants": [
        {"name": "team_a", "api_keys_env": "NO_SUCH_KEYS_ENV", "daily_cap_usd": 5}]}))
    with pytest.raises(ConfigError, match=r"budget\.tenants\[0\]\.daily_cap_usd.*\$NO_SUCH_KEYS_ENV"):
        cfg.check_environment({})
    cfg.check_environment({"NO_SUCH_KEYS_ENV": "k1,k2"})  # keys present: fine


def test_prices_from_the_genai_prices_table():
    cfg = AppArgs.model_validate(_app_args(budget={"price_source": "genai_prices"}))
    assert resolve_prices(cfg)["strong"] == (2.5, 10.0)  # gpt-4o in the package's snapshot
    cfg = AppArgs.model_validate(_app_args(budget={"price_source": "genai_prices"}, strong_model={"model": "no-such-llm"}))
    with pytest.raises(ConfigError, match="strong_model.model 'no-such-llm'"):
        resolve_prices(cfg)


def test_targets_are_bounded_in_the_state_and_in_each_replica():
    args = budget_args(max_targets=2)
    state = BudgetState(args.model_dump(), PRICES)
    bc = BudgetClient(FakeHandle(state), args, {}, PRICES, ServingMetrics(export=False))
    for f in ("0.1", "0.2", "0.3"):
        key, target = bc.target_for(parse_model_name(f"router-fake-strong{f}"), None)
        bc.observe(key, target, 0.5, True)
    asyncio.run(bc.sync_once())
    assert len(bc._labels) == 2 and list(state.keys) == ["fake:-:share=0.2", "fake:-:share=0.3"]


def test_a_tenants_target_comes_before_the_routers(monkeypatch):
    monkeypatch.setenv("TEAM_B_KEYS", "key-b")
    args = budget_args(tenants=[{"name": "team_b", "api_keys_env": "TEAM_B_KEYS", "budget": {"strong_share": 0.2}}])
    state = BudgetState(args.model_dump(), PRICES)
    ing = make_ingress(state, args, router_budget=BudgetTargetArgs(strong_share=0.5), keys_env="NO_SUCH_ENV_X")

    async def go():
        async with _client(ing) as c:
            r = await _chat(c, "router-fake", 0.9, key="key-b")
            assert r.headers["x-rayroute-budget-target"] == "share=0.2" and r.headers["x-rayroute-tenant"] == "team_b"
            r = await _chat(c, "router-fake-strong0.7", 0.9, key="key-b")  # the name's own target first
            assert r.headers["x-rayroute-budget-target"] == "share=0.7"
            await ing.service.budget.sync_once()

    asyncio.run(go())
    assert set(state.keys) == {"fake:team_b:share=0.2", "fake:team_b:share=0.7"}


def test_a_spent_cap_is_not_bypassed_by_a_feature_the_weak_model_lacks(monkeypatch):
    """Images normally send a request strong (route_strong_for); over the cap they get a 400 instead."""
    monkeypatch.setenv("TEAM_C_KEYS", "key-c")
    args = budget_args(tenants=[{"name": "team_c", "api_keys_env": "TEAM_C_KEYS", "daily_cap_usd": 0.0}])
    state = BudgetState(args.model_dump(), PRICES)
    ing = make_ingress(state, args)
    ing.service.models = ServedModels(strong="strong", weak="weak", default_router="fake",
                                      weak_lacks=frozenset({"images"}), route_strong_for=frozenset({"images"}))
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    body = {"model": "router-fake-0.1", "messages": [{"role": "user", "content": [{"type": "text", "text": "q p=0.9"}, image]}]}

    async def go():
        async with _client(ing) as c:
            capped = await c.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer key-c"})
            ing.service.budget.tenants.clear()  # the same request without a cap goes strong
            free = await c.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer key-c"})
            return capped, free

    capped, free = asyncio.run(go())
    assert capped.status_code == 400 and capped.json()["error"]["code"] == "budget_exceeded_feature"
    assert free.status_code == 200 and free.headers["x-routed-model"] == "strong"
