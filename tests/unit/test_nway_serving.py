"""N-way serving without Ray: the ``nway:`` config, the ``cost<λ>`` name grammar, and the ingress
(ASGI, in process) ranking four fake models with a real kNN checkpoint and falling back down the
ranking through the one fallback path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import ValidationError

from deployments import errors as E
from deployments.chat import ServedModels
from deployments.config import AppArgs, IngressArgs, NWayArgs
from deployments.ingress import Ingress
from deployments.metrics import ServingMetrics
from deployments.nway import NWayRouting, estimate_tokens
from deployments.protocol import parse_model_name
from routers.errors import UnknownModelError
from routers.paths import REPO_ROOT
from tests.fakes import (
    NWAY_EASY_PROMPT,
    NWAY_EXPECTED,
    NWAY_HARD_PROMPT,
    NWAY_MODELS,
    NWAY_PRICES,
    FakeHandle,
    FakeModel,
    nway_knn_checkpoint,
)


def _models(**over):
    return [{"name": n, "remote": {"base_url": f"http://127.0.0.1:1/{n}", "model": n, "api_key_env": "K"},
             "price": {"input_usd_per_1m_tokens": p, "output_usd_per_1m_tokens": p}, **over.get(n, {})}
            for n, p in zip(NWAY_MODELS, NWAY_PRICES)]


def _nway(source, **over):
    return {"models": _models(), "routers": [{"alias": "knn", "source": str(source)}], **over}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return nway_knn_checkpoint(tmp_path_factory.mktemp("nway") / "nway_knn")


# --- configuration ------------------------------------------------------------------------------


def test_config_defaults_and_router_name(checkpoint):
    models = _models(**{"m-big": {"router_name": "m-big"}})
    args = AppArgs.model_validate({"nway": {"models": models, "routers": [{"alias": "knn", "source": str(checkpoint)}]}})
    assert args.nway.default_cost_weight == 0.2 and args.nway.rule == "cost" and args.nway.max_fallbacks == 2
    assert [m.router_name for m in args.nway.models] == NWAY_MODELS  # default: the served name
    assert args.nway.models[0].remote.max_retries == 2  # the strong model's client defaults


@pytest.mark.parametrize("change, needle", [
    (lambda n: n["models"][0].pop("remote"), "exactly one of `remote`"),
    (lambda n: n["models"][0].update(local={"model": "models/x"}), "exactly one of `remote`"),
    (lambda n: n["models"][1].update(name="m-cheap"), "nway.models[].name must be unique"),
    (lambda n: n["models"][0].update(colour="red"), "colour"),
    (lambda n: n["models"][0]["remote"].pop("model"), "remote needs `base_url` and `model`"),
    (lambda n: n["models"][0].pop("price"), "price"),
    (lambda n: n["models"][0]["price"].update(input_usd_per_1m_tokens=-1), "input_usd_per_1m_tokens"),
    (lambda n: n["routers"][0].update(models=["m-nope"]), "m-nope"),
    (lambda n: n.update(default_cost_weight=-0.1), "default_cost_weight"),
    (lambda n: n.update(rule="within", default_cost_weight=2), "τ under rule 'within'"),
    (lambda n: n.update(surprise=1), "surprise"),
    (lambda n: n["routers"][0].update(placement="replica"), "placement"),
])
def test_config_errors_name_the_field(change, needle):
    nway = _nway("x")
    change(nway)
    with pytest.raises(ValidationError) as exc:
        AppArgs.model_validate({"nway": nway})
    assert needle in str(exc.value)


def test_names_must_not_clash_with_the_two_model_app():
    nway = _nway("x")
    nway["models"][0]["name"] = "gpt-4o"  # the default strong model's name
    with pytest.raises(ValidationError, match="clash with the strong/weak model names"):
        AppArgs.model_validate({"nway": nway})
    with pytest.raises(ValidationError, match="clash with routers"):
        AppArgs.model_validate({"nway": {**_nway("x"), "routers": [{"alias": "random"}]}})


def test_preflight_names_the_router_and_the_known_models(checkpoint):
    from deployments.app import preflight_nway

    nway = NWayArgs.model_validate(_nway(checkpoint))
    preflight_nway(nway)  # every model in the vocabulary
    bad = _nway(checkpoint)
    bad["models"][3]["router_name"] = "gpt-5"
    with pytest.raises(UnknownModelError) as exc:
        preflight_nway(NWayArgs.model_validate(bad))
    assert "nway.routers[0] ('knn')" in str(exc.value) and "gpt-5" in str(exc.value)
    assert "known models: m-cheap, m-small, m-mid, m-big" in str(exc.value)


def test_example_config_validates():
    cfg = yaml.safe_load((REPO_ROOT / "serve_config.nway.yaml").read_text())
    args = AppArgs.model_validate(cfg["applications"][0]["args"])
    assert args.nway is not None and len(args.nway.models) >= 3
    assert all(m.remote is not None for m in args.nway.models)
    assert args.default_router == "linear_aux_static"  # the served default, as in serve_config.yaml
    assert {m.name: m.lacking() for m in args.nway.models}["llama-2-70b-chat"] == {"images", "audio", "tools"}
    # its router's checkpoint knows every model's router_name (once that checkpoint and its router
    # class are in the tree: checkpoints/nway_mf comes with the N-way MF router)
    from deployments.app import preflight_nway
    from routers.nway.registry import QUALITY_ROUTER_CLASSES, read_quality_config

    for r in args.nway.routers:
        path = Path(r.source)
        if not path.is_dir() or read_quality_config_or_none(path, read_quality_config) is None:
            pytest.skip(f"{path} is not here yet (or its router class: known {sorted(QUALITY_ROUTER_CLASSES)})")
    preflight_nway(args.nway)


def read_quality_config_or_none(path, reader):
    try:
        return reader(path)
    except Exception:
        return None


# --- the model name -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, weight", [("router-knn-cost0.2", 0.2), ("router-knn-cost0", 0.0),
                                          ("router-knn-cost10", 10.0), ("router-knn-cost1e-05", 1e-05)])
def test_cost_weight_names(name, weight):
    sel = parse_model_name(name)
    assert sel.router == "knn" and sel.cost_weight == weight and sel.threshold is None


@pytest.mark.parametrize("name, error, needle", [
    ("router-knn-cost-1", E.ThresholdError, "'-1'"),
    ("router-knn-costinf", E.ThresholdError, "'inf'"),
    ("router-knn-costnan", E.ThresholdError, "'nan'"),
    ("router-knn-costabc", E.ModelNameError, "'abc'"),
    ("router-knn-cost", E.ModelNameError, "not a number"),
])
def test_bad_cost_weights_are_400_with_an_example(name, error, needle):
    with pytest.raises(error) as exc:
        parse_model_name(name)
    assert needle in exc.value.message and "router-knn-cost0.2" in exc.value.message
    assert E.classify(exc.value)[0] == 400


def test_estimate_tokens():
    assert estimate_tokens("") == 1 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2


# --- the ingress, in process --------------------------------------------------------------------


def _ingress(checkpoint, errors=None, **nway_over):
    args = NWayArgs.model_validate(_nway(checkpoint, **nway_over))
    backends = {n: FakeModel(n, (errors or {}).get(n)) for n in NWAY_MODELS}
    ing = Ingress({}, FakeHandle(FakeModel("weak")), FakeHandle(FakeModel("strong")),
                  models=ServedModels(strong="strong", weak="weak", default_router="none",
                                      prices_usd_per_1m=NWayRouting.from_args(args).prices_usd_per_1m()),
                  args=IngressArgs(api_keys_env=None), metrics=ServingMetrics(export=False),
                  nway=NWayRouting.from_args(args), nway_backends={n: FakeHandle(b) for n, b in backends.items()})
    return ing, ing.build_asgi_app(), backends


def _call(app, method, path, body=None):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await (c.post(path, json=body) if method == "POST" else c.get(path))

    return asyncio.run(go())


def _chat(app, model, prompt=NWAY_HARD_PROMPT, **extra):
    return _call(app, "POST", "/v1/chat/completions",
                 {"model": model, "messages": [{"role": "user", "content": prompt}], **extra})


@pytest.mark.parametrize("weight, expected", sorted(NWAY_EXPECTED.items()))
def test_routing_follows_the_rule(checkpoint, weight, expected):
    ing, app, backends = _ingress(checkpoint)
    r = _chat(app, f"router-knn-cost{weight}")
    assert r.status_code == 200, r.text
    assert r.json()["model"] == expected and r.headers["x-routed-model"] == expected
    assert r.headers["x-router"] == "knn" and "x-rayroute-fallback" not in r.headers
    assert float(r.headers["x-router-quality"]) == pytest.approx(dict(zip(NWAY_MODELS, [0.1, 0.3, 0.9, 1.0]))[expected])
    assert float(r.headers["x-router-cost-weight"]) == weight
    assert [n for n, b in backends.items() if b.calls] == [expected]
    snap = ing.metrics.snapshot()
    assert snap["nway_choices"] == [{"router": "knn", "model": expected, "count": 1}]
    assert snap["requests"] == [{"router": "knn", "routed_model": expected, "route": "nway", "count": 1}]
    assert set(snap["estimated_cost_usd"]) == {expected}


def test_bare_name_uses_the_default_weight_and_easy_prompts_go_cheap(checkpoint):
    _, app, _ = _ingress(checkpoint)
    assert _chat(app, "router-knn").headers["x-routed-model"] == "m-mid"  # default λ 0.2
    # every model is predicted right on an easy prompt: the tie goes to the cheapest, even at λ = 0
    assert _chat(app, "router-knn-cost0", NWAY_EASY_PROMPT).headers["x-routed-model"] == "m-cheap"
    _, app, _ = _ingress(checkpoint, routers=[{"alias": "knn", "source": str(checkpoint), "default_cost_weight": 0}])
    assert _chat(app, "router-knn").headers["x-routed-model"] == "m-big"


def test_route_returns_the_ranked_candidates(checkpoint):
    _, app, backends = _ingress(checkpoint)
    r = _call(app, "POST", "/v1/route", {"model": "router-knn-cost0.2", "prompt": NWAY_HARD_PROMPT, "max_tokens": 100})
    body = r.json()
    assert r.status_code == 200 and body["router"] == "knn" and body["routed_model"] == "m-mid"
    assert body["rule"] == "cost" and body["cost_weight"] == 0.2 and body["completion_tokens"] == 100
    assert [c["model"] for c in body["candidates"]] == ["m-mid", "m-big", "m-small", "m-cheap"]
    big = next(c for c in body["candidates"] if c["model"] == "m-big")
    tokens = body["prompt_tokens"] + 100
    assert big["estimated_cost_usd"] == pytest.approx(tokens * 20.0 / 1e6)
    assert big["relative_cost"] == 1.0 and big["score"] == pytest.approx(0.8)
    assert big["input_usd_per_1m_tokens"] == big["output_usd_per_1m_tokens"] == 20.0  # the configured price
    assert all(b.calls == 0 for b in backends.values())  # a decision only


def test_two_model_route_body_is_unchanged(checkpoint):
    _, app, _ = _ingress(checkpoint)
    body = _call(app, "POST", "/v1/route", {"model": "strong", "prompt": "hi"}).json()
    assert set(body) == {"router", "routed_model", "route", "p_strong", "threshold", "strong_fraction",
                         "budget_target", "budget_share"}


def test_models_lists_nway_routers_and_models(checkpoint):
    _, app, _ = _ingress(checkpoint)
    cards = {m["id"]: m["kind"] for m in _call(app, "GET", "/v1/models").json()["data"]}
    assert cards == {"strong": "strong", "weak": "weak", "router-knn": "nway_router",
                     **{n: "nway_model" for n in NWAY_MODELS}}


def test_fallback_walks_down_the_ranking(checkpoint):
    errors = {"m-mid": E.UpstreamError("HTTP 503", code="upstream_http_503"),
              "m-big": E.UpstreamUnavailableError("refused", code="upstream_connection_error")}
    ing, app, backends = _ingress(checkpoint, errors)
    r = _chat(app, "router-knn-cost0.2")  # ranking: mid, big, small, cheap
    assert r.status_code == 200 and r.json()["model"] == "m-small"
    assert r.headers["x-rayroute-fallback"] == "m-mid_failed:upstream_http_503,m-big_failed:upstream_connection_error"
    assert float(r.headers["x-router-quality"]) == pytest.approx(0.3)  # of the model that answered
    snap = ing.metrics.snapshot()
    assert [(f["from_model"], f["to_model"]) for f in snap["fallbacks"]] == [("m-big", "m-small"), ("m-mid", "m-big")]
    assert snap["requests"][0]["routed_model"] == "m-small" and backends["m-cheap"].calls == 0


def test_fallbacks_stop_at_max_fallbacks(checkpoint):
    errors = {n: E.UpstreamError("HTTP 500", code="upstream_http_500") for n in NWAY_MODELS}
    _, app, backends = _ingress(checkpoint, errors, max_fallbacks=1)
    r = _chat(app, "router-knn-cost0.2")
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_http_500"
    assert [n for n, b in backends.items() if b.calls] == ["m-mid", "m-big"]


def test_the_requests_own_fault_does_not_fall_back(checkpoint):
    _, app, backends = _ingress(checkpoint, {"m-mid": E.UpstreamRejectedError("bad field")})
    r = _chat(app, "router-knn-cost0.2")
    assert r.status_code == 400 and backends["m-big"].calls == 0


def test_a_dead_replica_falls_back(checkpoint):
    _, app, _ = _ingress(checkpoint, {"m-mid": RuntimeError("replica died")})
    r = _chat(app, "router-knn-cost0.2")
    assert r.json()["model"] == "m-big" and r.headers["x-rayroute-fallback"] == "m-mid_failed:RuntimeError"


def test_streaming_falls_back_the_same_way(checkpoint):
    _, app, _ = _ingress(checkpoint, {"m-mid": E.UpstreamError("HTTP 503", code="upstream_http_503")})
    r = _chat(app, "router-knn-cost0.2", stream=True)
    events = [ln[6:] for ln in r.text.splitlines() if ln.startswith("data: ")]
    assert r.status_code == 200 and r.headers["x-routed-model"] == "m-big" and events[-1] == "[DONE]"
    assert r.headers["x-rayroute-fallback"] == "m-mid_failed:upstream_http_503"
    assert "".join(json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]) == "m-big answer"


def test_a_conversation_over_a_models_window_goes_to_the_next_candidate(checkpoint):
    too_long = E.ContextLengthError("This model's maximum context length is 512 tokens", param="messages")
    for stream in (False, True):
        ing, app, backends = _ingress(checkpoint, {"m-mid": too_long})
        r = _chat(app, "router-knn-cost0.2", stream=stream)  # ranking: mid, big, small, cheap
        assert r.status_code == 200 and r.headers["x-routed-model"] == "m-big"
        assert r.headers["x-rayroute-fallback"] == "m-mid_failed:context_length_exceeded"
        assert backends["m-mid"].calls == backends["m-big"].calls == 1
    # named directly there is no next candidate: the model's own 400
    _, app, _ = _ingress(checkpoint, {"m-mid": too_long})
    r = _chat(app, "m-mid")
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


IMAGE = [{"type": "text", "text": NWAY_HARD_PROMPT},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]


def _local(**local):
    return {"remote": None, "local": {"model": "/nonexistent/tiny", **local}}


def test_candidates_that_lack_a_feature_are_skipped(checkpoint):
    """A local model without vision or a tool-call parser is skipped for a request that needs it; the
    header and the capability metric say why. Without the feature it is ranked as before."""
    models = _models(**{"m-mid": _local(), "m-big": _local(supports_images=True)})
    ing, app, backends = _ingress(checkpoint, models=models)
    r = _call(app, "POST", "/v1/chat/completions",
              {"model": "router-knn-cost0.2", "messages": [{"role": "user", "content": IMAGE}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-routed-model"] == "m-big" and r.headers["x-rayroute-capability"] == "images"
    assert backends["m-mid"].calls == 0
    snap = ing.metrics.snapshot()
    assert snap["capability_routes"] == [{"router": "knn", "feature": "images", "count": 1}]
    assert snap["nway_choices"] == [{"router": "knn", "model": "m-big", "count": 1}]  # the model it went to
    r = _chat(app, "router-knn-cost0.2", tools=TOOLS)  # m-mid and m-big lack tools: m-small
    assert r.headers["x-routed-model"] == "m-small" and r.headers["x-rayroute-capability"] == "tools"
    r = _chat(app, "router-knn-cost0.2", tools=TOOLS, tool_choice="none")  # tools not used: no feature
    assert r.headers["x-routed-model"] == "m-mid" and "x-rayroute-capability" not in r.headers


def test_a_remote_model_can_be_declared_to_lack_a_feature(checkpoint):
    models = _models(**{"m-mid": {"lacks": ["images"]}, "m-big": _local(supports_images=True, tool_call_parser="hermes")})
    models[3]["lacks"] = []  # given: overrides the local model's own (it would lack audio)
    args = NWayArgs.model_validate(_nway(checkpoint, models=models))
    assert [m.lacking() for m in args.models] == [frozenset(), frozenset(), {"images"}, frozenset()]
    _, app, backends = _ingress(checkpoint, models=models)
    r = _call(app, "POST", "/v1/chat/completions",
              {"model": "router-knn-cost0.2", "messages": [{"role": "user", "content": IMAGE}]})
    assert r.headers["x-routed-model"] == "m-big" and r.headers["x-rayroute-capability"] == "images"
    with pytest.raises(ValidationError, match="context"):  # not a feature skipped before the call
        NWayArgs.model_validate(_nway(checkpoint, models=_models(**{"m-mid": {"lacks": ["context"]}})))


def test_a_feature_no_candidate_serves_is_400_naming_the_models_that_do(checkpoint):
    models = _models(**{n: _local() for n in NWAY_MODELS})
    models[0] = {**models[0], **_local(supports_images=True)}  # m-cheap: a vision model
    _, app, backends = _ingress(checkpoint, models=models)
    r = _call(app, "POST", "/v1/chat/completions",
              {"model": "m-mid", "messages": [{"role": "user", "content": IMAGE}]})
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "unsupported_feature" and err["param"] == "messages"
    assert "'m-mid' cannot serve images" in err["message"] and "['m-cheap']" in err["message"]
    r = _chat(app, "router-knn-cost0.2", tools=TOOLS)
    err = r.json()["error"]
    assert r.status_code == 400 and err["param"] == "tools" and "can serve tools" in err["message"]
    assert all(b.calls == 0 for b in backends.values())


def test_an_nway_model_is_callable_by_name(checkpoint):
    _, app, backends = _ingress(checkpoint)
    r = _chat(app, "m-small")
    assert r.json()["model"] == "m-small" and r.headers["x-router"] == "none" and backends["m-small"].calls == 1


@pytest.mark.parametrize("model, needle", [
    ("router-knn-0.5", "router-knn-cost0.2"),            # a threshold on an N-way router
    ("router-knn-strong0.3", "router-knn-cost0.2"),
    ("router-nope-cost0.2", "router-knn"),               # unknown router: the known ones listed
])
def test_wrong_suffixes_are_400(checkpoint, model, needle):
    _, app, _ = _ingress(checkpoint)
    r = _chat(app, model)
    assert r.status_code == 400 and needle in r.json()["error"]["message"] and r.json()["error"]["param"] == "model"


def test_cost_on_a_two_model_router_is_400():
    from deployments.chat import ChatService

    svc = ChatService({"lin": object()}, None, None, ServedModels(strong="s", weak="w", default_router="lin"),
                      IngressArgs(api_keys_env=None), ServingMetrics(export=False))
    with pytest.raises(E.ModelNameError, match="'router-lin-0.5'"):
        svc.select("router-lin-cost0.2")


def test_within_rule_takes_tau(checkpoint):
    _, app, _ = _ingress(checkpoint, rule="within", default_cost_weight=0.15)
    # τ = 0.15: m-mid (0.9) is within 0.15 of the best (1.0) and cheaper than m-big
    assert _chat(app, "router-knn").headers["x-routed-model"] == "m-mid"
    r = _chat(app, "router-knn-cost2")
    assert r.status_code == 400 and "router-knn-cost0.2" in r.json()["error"]["message"]


def test_a_tenant_over_its_cap_gets_the_cheapest_first(checkpoint):
    from types import SimpleNamespace

    ing, app, _ = _ingress(checkpoint)
    recorded = []
    ing.service.budget = SimpleNamespace(cap=lambda tenant: "weak",
                                         record_cost=lambda *a: recorded.append(a))
    sel = ing.service.select("router-knn-cost0")
    decision = asyncio.run(ing.service.decide_nway(sel, NWAY_HARD_PROMPT, 10, 10, tenant="acme"))
    assert decision.routed_model == "m-cheap" and decision.budget_cap == "cheapest"
    assert [c.model for c in decision.candidates] == NWAY_MODELS  # by estimated cost
    assert ing.service.headers(decision, "m-cheap", None)["x-rayroute-budget-cap"] == "cheapest"


def test_the_app_binds_one_deployment_per_nway_model(checkpoint):
    """build_app (no cluster needed to bind): remote models on the strong model's client, a local one
    on the weak model's vLLM deployment under its served name."""
    from deployments.app import build_app

    models = _models()
    models[0] = {"name": "m-cheap", "local": {"model": "models/tiny-llama"},
                 "price": {"input_usd_per_1m_tokens": 0.1, "output_usd_per_1m_tokens": 0.1}}
    app = build_app({"routers": [{"alias": "random", "placement": "ingress"}],
                     "nway": {"models": models, "routers": [{"alias": "knn", "source": str(checkpoint)}]}})
    kwargs = app._bound_deployment.init_kwargs
    backends = kwargs["nway_backends"]
    assert sorted(backends) == sorted(NWAY_MODELS)
    assert {b._bound_deployment.name for b in backends.values()} == {"NWay_m_cheap", "NWay_m_small", "NWay_m_mid",
                                                                     "NWay_m_big"}
    cheap = backends["m-cheap"]._bound_deployment
    assert cheap.func_or_class.__name__ == "WeakModel" and cheap.init_args[1] == "m-cheap"
    big = backends["m-big"]._bound_deployment
    assert big.func_or_class.__name__ == "StrongModel" and big.init_kwargs["model"] == "m-big"
    assert kwargs["models"].prices_usd_per_1m["m-big"] == (20.0, 20.0)


# --- hot reload through the ingress's user_config -------------------------------------------------


def test_a_changed_nway_checkpoint_is_hot_reloaded(checkpoint, tmp_path):
    from routers.embeddings import HashingEmbedder
    from routers.errors import CheckpointError
    from routers.nway.knn import KNNQualityRouter
    from tests.fakes import nway_training

    ing, app, _ = _ingress(checkpoint)
    assert _chat(app, "router-knn-cost0").headers["x-routed-model"] == "m-big"
    # a second checkpoint where the cheapest model is as good as the best on hard prompts
    prompts, outcomes = nway_training()
    outcomes[::2, 0] = 1.0  # hard prompts (even rows): m-cheap right too
    KNNQualityRouter.fit(prompts, outcomes, NWAY_MODELS, HashingEmbedder(64), k=5).save(tmp_path / "v2")

    asyncio.run(ing.reconfigure({"nway_routers": {"knn": {"source": str(tmp_path / "v2")}}}))
    assert _chat(app, "router-knn-cost0").headers["x-routed-model"] == "m-cheap"  # the tie goes to the cheapest
    assert ing.metrics.snapshot()["router_versions"]["knn"] == "v2"
    assert ing.metrics.router_reloads["knn"] == 1
    # the same source again changes nothing; a broken one raises and the current one keeps serving
    asyncio.run(ing.reconfigure({"nway_routers": {"knn": {"source": str(tmp_path / "v2")}}}))
    assert ing.metrics.router_reloads["knn"] == 1
    with pytest.raises(CheckpointError):
        asyncio.run(ing.reconfigure({"nway_routers": {"knn": {"source": str(tmp_path / "missing")}}}))
    assert _chat(app, "router-knn-cost0").headers["x-routed-model"] == "m-cheap"
    with pytest.raises(ValueError, match="unknown N-way router 'nope'"):
        asyncio.run(ing.reconfigure({"nway_routers": {"nope": {"source": str(checkpoint)}}}))
    with pytest.raises(ValueError, match="takes source"):
        asyncio.run(ing.reconfigure({"nway_routers": {"knn": {"path": "x"}}}))


def test_the_app_puts_nway_routers_in_the_ingress_user_config(checkpoint):
    from deployments.app import ingress_user_config

    cfg = AppArgs.model_validate({"nway": _nway(checkpoint)})
    assert ingress_user_config(cfg)["nway_routers"] == {"knn": {"source": str(checkpoint), "kwargs": {}}}
    assert "nway_routers" not in ingress_user_config(AppArgs())
