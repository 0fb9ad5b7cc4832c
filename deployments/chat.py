"""The chat service behind the ingress's HTTP layer: decide the route, forward the request, fall back,
stream. It sees deployment handles only (objects with Serve's ``h.method.remote(...)`` call shape),
so it runs without Ray too, which is how the unit tests drive it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from routers.base import routing_text
from routers.errors import ConfigError, UnknownRouterError

from deployments.config import IngressArgs
from deployments.budget import BudgetClient, budget_off_error
from deployments.capabilities import feature_param, request_features
from deployments.errors import (
    BackendUnavailableError,
    ContextLengthError,
    InvalidRequestError,
    ModelNameError,
    ServingError,
    UpstreamError,
    UnsupportedFeatureError,
    UpstreamUnavailableError,
    classify,
    unwrap,
)
from deployments.metrics import ServingMetrics
from deployments.nway import NWayRouting, estimate_tokens
from deployments.protocol import (
    ROUTER_PREFIX,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    ModelSelection,
    NWayDecision,
    RouteDecision,
    RouteRequest,
    RouterVerdict,
    parse_model_name,
)

log = logging.getLogger("ray.serve")
_T = TypeVar("_T")
Route = Literal["strong", "weak"]


@dataclass(frozen=True)
class ServedModels:
    """The two models the app serves, the router a bare ``router`` request uses, and the strong
    model's failure policy (``weak``: answer with the weak model; ``error``: 502/504)."""

    strong: str
    weak: str
    default_router: str
    fallback: Literal["weak", "error"] = "weak"
    #: model name -> ($ per 1M prompt tokens, $ per 1M completion tokens), for the cost metric
    prices_usd_per_1m: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: request features the weak model cannot serve (``WeakModelArgs.lacks``), and those of them
    #: (or ``context``) that send a routed request strong instead of a 400
    weak_lacks: frozenset[str] = frozenset()
    route_strong_for: frozenset[str] = frozenset()


async def _await(response: Any) -> Any:
    return await response


Decision = RouteDecision | NWayDecision


class ChatService:
    """``routers``: alias -> handle of a router deployment, or an in-process router with the same
    ``route.remote`` interface. ``fallback`` and ``on_router_error`` may change in place
    (``Ingress.reconfigure``). ``nway``: the N-way routers and models (``nway:`` in the config), with
    ``nway_backends``: served name -> handle of each N-way model."""

    def __init__(self, routers: dict[str, Any], weak: Any, strong: Any, models: ServedModels, args: IngressArgs,
                 metrics: ServingMetrics, budget: BudgetClient | None = None, nway: NWayRouting | None = None,
                 nway_backends: dict[str, Any] | None = None) -> None:
        self.routers = dict(routers)
        self.weak = weak
        self.strong = strong
        self.nway = nway
        self.nway_backends = dict(nway_backends or {})
        self.models = models
        self.fallback = models.fallback
        self.on_router_error = args.on_router_error
        self.router_timeout_s = args.router_timeout_s
        self.backend_timeout_s = args.backend_timeout_s
        self.metrics = metrics
        self.budget = budget  # live budget control (budget.enabled), else None
        self._strong_info: dict[str, Any] | None = None
        self.learning: Any = None  # deployments.learning.Learning, set by the ingress when configured

    async def call_model(self, route: Route, payload: dict[str, Any]) -> dict[str, Any]:
        """One plain call of the strong or weak model, no fallback (label collection's other answer)."""
        handle = self.strong if route == "strong" else self.weak
        return await asyncio.wait_for(_await(handle.chat.remote(payload)), self.backend_timeout_s)

    def _learn(self, request_id: str | None, req: ChatCompletionRequest, decision: Decision, model: str,
               fallback: str | None, answer: dict[str, Any] | None) -> None:
        """Hand a routed answer to learning (collection, feedback, shadow); never raises. Two-model
        decisions only: labels compare the strong and the weak answer."""
        if (self.learning is None or request_id is None or isinstance(decision, NWayDecision)
                or decision.router == "none" or fallback or decision.fallback):
            return
        try:
            self.learning.after_answer(request_id, routing_text(req.routing_messages()), req.body(), decision.router,
                                       decision.p_strong, decision.route, model, answer)
        except Exception as exc:  # learning must never fail a request
            log.warning("learning: skipped a request: %s", exc)

    # --- the decision ----------------------------------------------------------------------------

    def select(self, model: str) -> ModelSelection:
        if model == "router":  # bare 'router': the default router at its default threshold
            return ModelSelection(router=self.models.default_router)
        nway_routers = tuple(self.nway.routers) if self.nway is not None else ()
        nway_models = tuple(self.nway.models) if self.nway is not None else ()
        sel = parse_model_name(model, direct_models=(self.models.strong, self.models.weak, *nway_models))
        if sel.routed and sel.router not in self.routers and sel.router not in nway_routers:
            raise UnknownRouterError(
                f"unknown router {sel.router!r} in model {model!r}; this server has: "
                + ", ".join(f"{ROUTER_PREFIX}{a}" for a in (*self.routers, *nway_routers))
            )
        two_model_spec = sel.threshold is not None or sel.strong_fraction is not None or sel.usd_per_hour is not None
        if sel.router in nway_routers and two_model_spec:
            raise ModelNameError(
                f"router {sel.router!r} in model {model!r} routes among N models by quality and price: name it "
                f"'router-{sel.router}-cost<λ>' (λ >= 0, e.g. 'router-{sel.router}-cost0.2') or 'router-{sel.router}'",
                param="model")
        if sel.cost_weight is not None and sel.router not in nway_routers:
            raise ModelNameError(
                f"'cost<λ>' in model {model!r} is for N-way routers ({', '.join(nway_routers) or 'none configured'}); "
                f"router {sel.router!r} takes a threshold, e.g. 'router-{sel.router}-0.5'", param="model")
        if sel.usd_per_hour is not None and self.budget is None:
            raise budget_off_error(model)
        return sel

    def is_nway(self, sel: ModelSelection) -> bool:
        """Whether ``sel`` names an N-way router or an N-way model."""
        return self.nway is not None and (sel.router in self.nway.routers or sel.direct_model in self.nway.models)

    def _model_of(self, route: Route) -> str:
        return self.models.strong if route == "strong" else self.models.weak

    async def decide(self, sel: ModelSelection, messages: Any, tenant: str | None = None,
                     observe: bool = True) -> RouteDecision:
        """The route of one request. With budget control, a tenant over its daily cap goes weak (or
        gets 429), and a request a target holds uses the controller's last α (``observe``: its
        decision counts towards the share; not for ``/v1/route``, which calls no model)."""
        budget = self.budget
        cap = budget.cap(tenant) if budget is not None and tenant is not None else None  # may raise 429
        if cap == "weak" and (sel.routed or sel.direct_model == self.models.strong):
            return RouteDecision(router=sel.router or "none", route="weak", routed_model=self.models.weak,
                                 tenant=tenant, budget_cap="weak")
        if not sel.routed:
            route = "strong" if sel.direct_model == self.models.strong else "weak"
            return RouteDecision(router="none", route=route, routed_model=sel.direct_model, tenant=tenant)
        control = budget.target_for(sel, tenant) if budget is not None else None
        threshold, fraction = sel.threshold, sel.strong_fraction
        if control is not None:
            budget.start()  # the background sync, once per replica (needs the running loop)
            threshold, fraction = budget.alpha(*control), None
        t0 = time.perf_counter()
        try:
            resp = self.routers[sel.router].route.remote(messages, threshold, fraction)
            verdict: RouterVerdict = await asyncio.wait_for(_await(resp), self.router_timeout_s)
        except Exception as exc:
            cause = unwrap(exc)
            if isinstance(cause, (InvalidRequestError, ConfigError)):
                raise cause from None  # the client's fault (bad threshold, no user text): 400
            reason = "timeout" if isinstance(exc, asyncio.TimeoutError) else type(cause).__name__
            if self.on_router_error == "error":
                raise BackendUnavailableError(
                    f"router {sel.router!r} is unavailable ({reason}); retry, or set "
                    "ingress.on_router_error to 'weak' or 'strong'") from None
            route, model = self.on_router_error, self._model_of(self.on_router_error)
            log.warning("router %r failed (%s); sending to %s per on_router_error", sel.router, reason, route)
            self.metrics.record_fallback(f"router_{reason}", f"router-{sel.router}", model)
            return RouteDecision(router=sel.router, route=route, routed_model=model, threshold=threshold,
                                 strong_fraction=sel.strong_fraction, fallback=f"router_error:{reason}", tenant=tenant)
        route = "strong" if verdict.strong else "weak"
        self.metrics.record_route(sel.router, route, time.perf_counter() - t0, cached=verdict.cached)
        extra: dict[str, Any] = {}
        if control is not None:
            key, target = control
            if observe:
                budget.observe(key, target, verdict.p_strong, verdict.strong)
            extra = {"budget_target": target.label(), "budget_share": budget.share(key, target), "budget_key": key}
        return RouteDecision(router=sel.router, route=route, routed_model=self._model_of(route),
                             p_strong=verdict.p_strong, threshold=verdict.threshold,
                             strong_fraction=sel.strong_fraction, tenant=tenant, **extra)

    async def decide_nway(self, sel: ModelSelection, text: str, prompt_tokens: int, completion_tokens: int | None,
                          tenant: str | None = None, model: str = "",
                          features: frozenset[str] = frozenset()) -> NWayDecision:
        """The ranking of one request among the N-way router's models (``deployments.nway``), without
        the models that lack one of the request's ``features``. A tenant over its daily cap gets the
        cheapest first (or 429, by its policy)."""
        nway = self.nway
        cap = self.budget.cap(tenant) if self.budget is not None and tenant is not None else None  # may raise 429
        if sel.direct_model is not None:
            return nway.capable(NWayDecision(router="none", routed_model=sel.direct_model, tenant=tenant), features)
        knob = nway.knob(sel.router, sel.cost_weight, model)
        t0 = time.perf_counter()
        try:
            decision = nway.decide(sel.router, knob, text, prompt_tokens, completion_tokens, tenant)
        except (InvalidRequestError, ConfigError):
            raise
        except Exception as exc:  # an in-process router has no replica to fall back from: say so
            log.warning("N-way router %r failed: %s: %s", sel.router, type(exc).__name__, exc)
            raise BackendUnavailableError(f"router {sel.router!r} is unavailable ({type(exc).__name__})") from None
        if cap == "weak":  # a spent daily cap: cheapest first, whatever the predicted quality
            cheapest = sorted(decision.candidates, key=lambda c: c.estimated_cost_usd)
            decision = decision.model_copy(update={"candidates": cheapest, "routed_model": cheapest[0].model,
                                                   "budget_cap": "cheapest"})
        decision = nway.capable(decision, features)
        for feature in decision.capability.split(",") if decision.capability else ():
            self.metrics.record_capability_route(decision.router, feature)
        self.metrics.record_nway_choice(sel.router, decision.routed_model, time.perf_counter() - t0)
        return decision

    async def _decide_nway_chat(self, sel: ModelSelection, req: ChatCompletionRequest,
                                tenant: str | None) -> NWayDecision:
        prompt = "\n".join(m.text() for m in req.messages)  # billed: every message, not only the routed text
        return await self.decide_nway(sel, routing_text(req.routing_messages()), estimate_tokens(prompt),
                                      req.max_completion_tokens or req.max_tokens, tenant, req.model,
                                      request_features(req))

    @staticmethod
    def headers(decision: Decision, used_model: str, fallback: str | None) -> dict[str, str]:
        if isinstance(decision, NWayDecision):
            return ChatService._nway_headers(decision, used_model, fallback)
        h = {"x-routed-model": used_model, "x-router": decision.router}
        if decision.p_strong is not None:
            h["x-router-p-strong"] = f"{decision.p_strong:.6g}"
        if decision.threshold is not None:
            h["x-router-threshold"] = f"{decision.threshold:.6g}"
        fb = fallback or decision.fallback
        if fb:
            h["x-rayroute-fallback"] = fb
        if decision.capability:
            h["x-rayroute-capability"] = decision.capability
        if decision.budget_target is not None:  # x-router-threshold is the α the controller gave
            h["x-rayroute-budget-target"] = decision.budget_target
            if decision.budget_share is not None and decision.budget_share == decision.budget_share:
                h["x-rayroute-budget-share"] = f"{decision.budget_share:.6g}"
        if decision.budget_cap:
            h["x-rayroute-budget-cap"] = decision.budget_cap
        if decision.tenant:
            h["x-rayroute-tenant"] = decision.tenant
        return h

    @staticmethod
    def _nway_headers(decision: NWayDecision, used_model: str, fallback: str | None) -> dict[str, str]:
        h = {"x-routed-model": used_model, "x-router": decision.router}
        quality = decision.quality_of(used_model)
        if quality is not None:  # the predicted quality of the model that answered
            h["x-router-quality"] = f"{quality:.6g}"
        if decision.cost_weight is not None:
            h["x-router-cost-weight"] = f"{decision.cost_weight:.6g}"
        if fallback:
            h["x-rayroute-fallback"] = fallback
        if decision.capability:
            h["x-rayroute-capability"] = decision.capability
        if decision.budget_cap:
            h["x-rayroute-budget-cap"] = decision.budget_cap
        if decision.tenant:
            h["x-rayroute-tenant"] = decision.tenant
        return h

    # --- what the weak model can serve -------------------------------------------------------------

    def _strong_for(self, decision: RouteDecision, features: frozenset[str]) -> RouteDecision:
        reason = ",".join(sorted(features))
        for feature in sorted(features):
            self.metrics.record_capability_route(decision.router, feature)
        return decision.model_copy(update={"route": "strong", "routed_model": self.models.strong,
                                           "capability": reason})

    def capable(self, decision: RouteDecision, req: ChatCompletionRequest) -> RouteDecision:
        """The decision, sent strong when it goes to a weak model that lacks a feature the request
        needs and ``route_strong_for`` says so; a 400 naming the feature and the model when not
        (or when the client named the weak model itself)."""
        if decision.route != "weak":
            return decision
        missing = request_features(req) & self.models.weak_lacks
        if not missing:
            return decision
        may_go_strong = decision.router != "none" and not decision.budget_cap  # a spent cap is hard
        refused = sorted(missing - self.models.route_strong_for) if may_go_strong else sorted(missing)
        if refused and decision.budget_cap:
            raise UnsupportedFeatureError(
                f"tenant {decision.tenant!r} has spent its daily budget, so this request goes to the weak model "
                f"{self.models.weak!r}, which cannot serve {', '.join(refused)}; retry after the next UTC "
                "midnight or raise budget.tenants[].daily_cap_usd", param="messages", code="budget_exceeded_feature")
        if refused:
            raise UnsupportedFeatureError(
                f"the weak model {self.models.weak!r} cannot serve {', '.join(refused)} (see weak_model."
                "supports_images / supports_audio / tool_call_parser); send it to the strong model "
                f"{self.models.strong!r}, or list the feature in weak_model.route_strong_for",
                param=feature_param(refused))
        return self._strong_for(decision, missing)

    def _context_goes_strong(self, decision: RouteDecision, exc: ContextLengthError) -> RouteDecision:
        """A conversation over the weak model's window (vLLM's verdict) goes strong when configured."""
        if (decision.route != "weak" or decision.router == "none" or decision.budget_cap
                or "context" not in self.models.route_strong_for):
            raise exc
        return self._strong_for(decision, frozenset({"context"}))

    # --- calling a model, with the strong model's fallback ---------------------------------------

    async def _check_strong_configured(self) -> None:
        """Raise the no-key error here (no replica call, no per-request error log) when the strong
        replica reported at its first use that it has no API key. Asked once, then cached."""
        if self._strong_info is None:
            try:
                self._strong_info = await asyncio.wait_for(_await(self.strong.info.remote()), self.router_timeout_s)
            except Exception:
                return  # let the real call decide
        if not self._strong_info.get("configured", True):
            raise UpstreamUnavailableError(
                f"the strong model {self.models.strong!r} is not configured: no API key in "
                f"${self._strong_info.get('api_key_env', '?')}", code="strong_model_no_api_key")

    def _chain(self, route: Route, weak_ok: bool) -> list[str]:
        """The two-model fallback order: the routed model, then the weak one if the strong one fails,
        when the policy allows and the weak model can serve the request (``weak_ok``)."""
        if route == "strong" and self.fallback == "weak" and weak_ok:
            return [self.models.strong, self.models.weak]
        return [self._model_of(route)]

    @staticmethod
    def _may_fall_back(exc: BaseException, context: bool = False) -> bool:
        """A failure the next model may answer instead: the provider failed (after its retries), or
        the replica itself died / timed out. The request's own fault (a 400) is not, except, with
        ``context``, a conversation over this model's window (the next may have a larger one)."""
        cause = unwrap(exc)
        if context and isinstance(cause, ContextLengthError):
            return True
        return isinstance(cause, UpstreamError) or not isinstance(cause, ServingError)

    def _handle(self, model: str) -> Any:
        if model == self.models.strong:
            return self.strong
        if model == self.models.weak:
            return self.weak
        return self.nway_backends[model]

    @staticmethod
    def _backend_error(exc: BaseException, model: str) -> BaseException:
        cause = unwrap(exc)
        if isinstance(cause, ServingError):
            return cause
        if isinstance(exc, asyncio.TimeoutError):
            return BackendUnavailableError(f"the model {model!r} did not answer in time")
        return BackendUnavailableError(f"the model {model!r} is unavailable ({type(cause).__name__}); retry")

    def _record_fallback(self, exc: BaseException, from_model: str, to_model: str) -> str:
        cause = unwrap(exc)
        reason = getattr(cause, "code", None) or type(cause).__name__
        log.warning("model %s failed (%s); falling back to %s", from_model, reason, to_model)
        self.metrics.record_fallback(reason, from_model, to_model)
        # the two-model strong model keeps its historical label "strong"
        return f"{'strong' if from_model == self.models.strong else from_model}_failed:{reason}"

    async def _call(self, route: Route | list[str], call: Callable[[Any, str], Awaitable[_T]],
                    weak_ok: bool = True) -> tuple[_T, str, str | None]:
        """``call(handle, model_name)`` on the first model of the chain, and on the next one each time
        a model fails in a way another may answer (``_may_fall_back``). ``route``: a two-model route
        (the chain is ``_chain(route, weak_ok)``: the strong model's policy) or an N-way ranking's
        chain (``NWayDecision.chain``; a conversation too long for one model's window goes to the
        next too). Returns (result, model used, fallback reasons joined by ',' or None). The one
        fallback path of plain and streaming calls, two-model and N-way alike."""
        nway = not isinstance(route, str)
        chain = list(route) if nway else self._chain(route, weak_ok)
        hops: list[str] = []
        for i, model in enumerate(chain):
            try:
                if model == self.models.strong:
                    await self._check_strong_configured()
                return await call(self._handle(model), model), model, ",".join(hops) or None
            except StopAsyncIteration:
                raise BackendUnavailableError(f"the model {model!r} returned an empty stream") from None
            except Exception as exc:
                if i + 1 == len(chain) or not self._may_fall_back(exc, context=nway):
                    raise self._backend_error(exc, model) from None
                hops.append(self._record_fallback(exc, model, chain[i + 1]))
        raise AssertionError("unreachable: an empty chain")

    def _cost(self, model: str, usage: dict[str, Any] | None, decision: Decision) -> None:
        price = self.models.prices_usd_per_1m.get(model)
        if not price or not usage:
            return
        usd = (usage.get("prompt_tokens", 0) * price[0] + usage.get("completion_tokens", 0) * price[1]) / 1e6
        self.metrics.record_cost(model, usd)
        self.metrics.record_spend(decision.router, decision.tenant or "-", usd)
        if self.budget is not None:
            route = "strong" if model == self.models.strong else "weak"
            self.budget.record_cost(decision.budget_key, route, decision.tenant, usd)

    # --- endpoints -------------------------------------------------------------------------------

    async def _call_capable(self, decision: RouteDecision, req: ChatCompletionRequest,
                            call: Callable[[Any, str], Awaitable[_T]]) -> tuple[_T, str, str | None, RouteDecision]:
        """``_call`` on the decided route; a conversation the weak model finds too long is sent to
        the strong model when configured. A request the weak model cannot serve never falls back to it."""
        weak_ok = decision.capability is None and not (request_features(req) & self.models.weak_lacks)
        try:
            return (*await self._call(decision.route, call, weak_ok), decision)
        except ContextLengthError as exc:
            decision = self._context_goes_strong(decision, exc)
        return (*await self._call(decision.route, call, weak_ok=False), decision)

    async def _decide_and_call(self, req: ChatCompletionRequest, tenant: str | None,
                               call: Callable[[Any, str], Awaitable[_T]]) -> tuple[Decision, tuple[_T, str, str | None]]:
        """The decision of a chat request and ``_call`` on it: an N-way ranking's chain, or the
        two-model route with the weak model's capabilities."""
        sel = self.select(req.model)
        if self.is_nway(sel):
            nway = await self._decide_nway_chat(sel, req, tenant)
            return nway, await self._call(nway.chain(self.nway.max_fallbacks), call)
        decision = self.capable(await self.decide(sel, req.routing_messages(), tenant), req)
        result, model, fallback, decision = await self._call_capable(decision, req, call)
        return decision, (result, model, fallback)

    @staticmethod
    def _route_label(decision: Decision, fallback: str | None) -> str:
        """The ``route`` label of the request metric: strong/weak (as served), or nway."""
        if isinstance(decision, NWayDecision):
            return "nway"
        return "weak" if fallback else decision.route

    async def chat(self, req: ChatCompletionRequest, tenant: str | None = None,
                   request_id: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
        """A chat completion: (body, headers). ``tenant``: the API key's tenant (budget control);
        ``request_id``: the answer's x-request-id (learning: feedback, label records)."""
        async def complete(handle: Any, model: str) -> dict[str, Any]:
            return await asyncio.wait_for(_await(handle.chat.remote(req.backend_payload(model))),
                                          self.backend_timeout_s)

        decision, (result, model, fallback) = await self._decide_and_call(req, tenant, complete)
        result["model"] = model
        self._cost(model, result.get("usage"), decision)
        self.metrics.record_request(decision.router, model, self._route_label(decision, fallback))
        self._learn(request_id, req, decision, model, fallback, result)
        return result, self.headers(decision, model, fallback)

    async def chat_stream(self, req: ChatCompletionRequest,
                          tenant: str | None = None,
                          request_id: str | None = None) -> tuple[AsyncIterator[str], dict[str, str]]:
        """A streamed chat completion: (SSE events ending ``data: [DONE]``, headers). The model is
        chosen, and falls back, before the first chunk; a failure after it ends the stream with an
        error event."""
        async def open_stream(handle: Any, model: str) -> tuple[Any, dict[str, Any]]:
            gen = handle.options(stream=True).chat_stream.remote(req.backend_payload(model))
            first = await asyncio.wait_for(gen.__anext__(), self.backend_timeout_s)
            return gen, first

        decision, ((gen, first), used, fallback) = await self._decide_and_call(req, tenant, open_stream)
        self.metrics.record_request(decision.router, used, self._route_label(decision, fallback))
        self._learn(request_id, req, decision, used, fallback, None)  # feedback and shadow; no judged label

        async def sse() -> AsyncIterator[str]:
            chunk = first
            try:
                while True:
                    chunk["model"] = used
                    if chunk.get("usage"):
                        self._cost(used, chunk["usage"], decision)
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                    chunk = await asyncio.wait_for(gen.__anext__(), self.backend_timeout_s)
            except StopAsyncIteration:
                pass
            except Exception as exc:
                status, body = classify(self._backend_error(exc, used))
                self.metrics.record_error(status, body["error"]["code"] or "")
                log.warning("stream from %s broke: %s", used, body["error"]["message"])
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"

        return sse(), self.headers(decision, used, fallback)

    async def route(self, req: RouteRequest, tenant: str | None = None) -> Decision:
        """The decision alone (``POST /v1/route``); a router that failed is an error here, whatever
        ``on_router_error`` says, since no model is called (nor counted towards a budget)."""
        sel = self.select(req.model)
        messages = [m.model_dump(exclude_none=True) for m in req.messages] if req.messages is not None else req.prompt
        if self.is_nway(sel):
            prompt = req.prompt if req.messages is None else "\n".join(m.text() for m in req.messages)
            return await self.decide_nway(sel, routing_text(messages), estimate_tokens(prompt),
                                          req.max_completion_tokens or req.max_tokens, tenant, req.model)
        decision = await self.decide(sel, messages, tenant, observe=False)
        if decision.p_strong is None and sel.routed:
            raise BackendUnavailableError(f"router {sel.router!r} is unavailable; retry")
        return decision

    def list_models(self) -> dict[str, Any]:
        cards = [ModelCard(id=f"{ROUTER_PREFIX}{a}", kind="router") for a in self.routers]
        cards += [ModelCard(id=self.models.strong, kind="strong"), ModelCard(id=self.models.weak, kind="weak")]
        if self.nway is not None:
            cards += [ModelCard(id=f"{ROUTER_PREFIX}{a}", kind="nway_router") for a in self.nway.routers]
            cards += [ModelCard(id=m, kind="nway_model") for m in self.nway.models]
        return ModelList(data=cards).model_dump()
