"""The front door: an OpenAI-compatible FastAPI app (``deployments.http``) over the chat service
(``deployments.chat``), as one Serve deployment class.

Routes: POST /v1/chat/completions (plain + SSE), POST /v1/route, GET /v1/models, GET /v1/stats,
GET /health. Plain class; ``deployments.app`` wraps it with ``serve.ingress()`` (late-bound ASGI
app: ``__serve_build_asgi_app__``) and ``serve.deployment``. ``build_asgi_app`` also works without
Ray (any objects with the handle interface), which is how it is exercised in isolation.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from deployments.budget import BudgetClient
from deployments.chat import ChatService, ServedModels
from deployments.config import BudgetArgs, BudgetTargetArgs, IngressArgs, LearningArgs, RouterConfig
from deployments.http import ApiKeyAuth, build_http_app
from deployments.metrics import ServingMetrics

log = logging.getLogger("ray.serve")

#: Serve's user_config of the ingress: the failure policies, changeable in place, and their choices
POLICIES: dict[str, tuple[str, ...]] = {"fallback": ("weak", "error"), "on_router_error": ("error", "weak", "strong")}
#: the other user_config keys: the in-process routers' configurations (alias -> RouterConfig; a
#: changed source reloads the router in place: a promotion) and the shadow candidates (served alias
#: -> {source, threshold, kwargs})
USER_CONFIG_KEYS = (*POLICIES, "routers", "shadow", "nway_routers")


def router_version(source: str | None, alias: str) -> str:
    """A short name of what a router serves: its checkpoint directory's name, or its registry name."""
    src = source or alias
    return Path(src).name if ("/" in src or src.startswith(".")) else src


class Ingress:
    """``routers``: alias -> handle of a router deployment. ``local_routers``: alias -> router
    scored in this process (``placement: ingress``), started here so that they load when the
    ingress starts, not on their first request; likewise ``nway``'s routers (``NWayRouting``),
    with ``nway_backends``: N-way model name -> handle."""

    def __init__(
        self,
        routers: dict[str, Any],
        weak: Any,
        strong: Any,
        *,
        models: ServedModels,
        args: IngressArgs,
        local_routers: dict[str, Any] | None = None,
        metrics: ServingMetrics | None = None,
        learning: LearningArgs | None = None,
        learning_factory: Any = None,
        budget_state: Any = None,
        budget: BudgetArgs | None = None,
        router_budgets: dict[str, BudgetTargetArgs | None] | None = None,
        budget_prices: dict[str, tuple[float, float]] | None = None,
        nway: Any = None,
        nway_backends: dict[str, Any] | None = None,
    ) -> None:
        local_routers = dict(local_routers or {})
        for router in local_routers.values():
            router.start()
        self.local_routers = local_routers
        self.metrics = metrics if metrics is not None else ServingMetrics(export=True)
        for alias, router in local_routers.items():
            self.metrics.record_router_version(alias, router_version(router.config.get("source"), alias), False)
        client = None
        if budget is not None and budget.enabled and budget_state is not None:
            client = BudgetClient(budget_state, budget, router_budgets or {}, budget_prices or {}, self.metrics)
            client.start()  # when Serve builds replicas on a running loop; else at the first controlled request
        if nway is not None:  # deployments.nway.NWayRouting: its routers load here, at start
            nway.start()
        self.service = ChatService({**routers, **local_routers}, weak, strong, models, args, self.metrics, budget=client,
                                   nway=nway, nway_backends=nway_backends)
        tenant_envs = {t.name: t.api_keys_env for t in budget.tenants} if budget is not None else {}
        self.auth = ApiKeyAuth(args.api_keys_env, tenant_envs)
        self.max_body_bytes = args.max_body_bytes
        from deployments.learning import Learning

        factory = learning_factory or Learning
        self.learning = factory(learning or LearningArgs(), models.strong, models.weak, models.prices_usd_per_1m,
                                self.service.call_model, self.metrics)
        self.service.learning = self.learning
        self._shadow_specs: dict[str, dict[str, Any]] = {}

    async def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        """Serve's user_config: ``{"fallback": "weak"|"error", "on_router_error":
        "error"|"weak"|"strong", "routers": {alias: RouterConfig}, "shadow": {alias: {source,
        threshold, kwargs}}}``; absent keys keep their value. Bad values raise (Serve keeps the old
        replica), naming the value and the choices.

        A router whose ``source`` (or kwargs / reload_token) changed is loaded in a worker thread
        while the old one keeps serving, then swapped in: a hot reload with no failed request."""
        cfg = dict(user_config or {})
        unknown = sorted(set(cfg) - set(USER_CONFIG_KEYS))
        if unknown:
            raise ValueError(f"unknown ingress user_config keys {unknown}; known: {sorted(USER_CONFIG_KEYS)}")
        for key, allowed in POLICIES.items():
            if key in cfg and cfg[key] not in allowed:
                raise ValueError(f"ingress user_config {key}={cfg[key]!r} is not one of {list(allowed)}")
        routers = dict(cfg.get("routers") or {})
        stray = sorted(set(routers) - set(self.local_routers))
        if stray:
            raise ValueError(f"ingress user_config routers {stray} are not placed in the ingress; in-process "
                             f"routers: {sorted(self.local_routers)} (others take their own user_config)")
        for alias, rc in routers.items():
            await self._reload_router(alias, RouterConfig.model_validate(rc))
        for alias, spec in dict(cfg.get("nway_routers") or {}).items():
            await self._reload_nway_router(alias, dict(spec or {}))
        if "shadow" in cfg:
            await self._set_shadows(dict(cfg["shadow"] or {}))
        self._set_policies(cfg)

    async def _reload_router(self, alias: str, new: "RouterConfig") -> None:
        router = self.local_routers[alias]
        old_source = router.config.get("source")
        reloaded = await asyncio.to_thread(router.reconfigure, new.model_dump())
        version = router_version(new.source, alias)
        self.metrics.record_router_version(alias, version, reloaded)
        if reloaded:
            log.info("router %r hot-reloaded: %s -> %s", alias, old_source, new.source)

    async def _reload_nway_router(self, alias: str, spec: dict[str, Any]) -> None:
        """A changed N-way checkpoint: loaded in a worker thread while the old one serves, then swapped."""
        nway = self.service.nway
        if nway is None:
            raise ValueError(f"ingress user_config nway_routers names {alias!r} but this app has no nway: section")
        unknown = sorted(set(spec) - {"source", "kwargs"})
        if unknown or not isinstance(spec.get("source"), str):
            raise ValueError(f"ingress user_config nway_routers[{alias!r}] takes source (a string) and kwargs; "
                             f"got {sorted(spec)}")
        from deployments.config import resolve_source

        reloaded = await asyncio.to_thread(nway.reload, alias, resolve_source(spec["source"]), spec.get("kwargs"))
        self.metrics.record_router_version(alias, router_version(spec["source"], alias), reloaded)

    async def _set_shadows(self, specs: dict[str, dict[str, Any]]) -> None:
        from deployments.router_replica import InProcessRouter

        served = set(self.service.routers)
        bad = sorted(set(specs) - served)
        if bad:
            raise ValueError(f"shadow routers {bad} shadow no served router; served: {sorted(served)}")
        shadows = {}
        for alias, spec in specs.items():
            spec = dict(spec)
            threshold = float(spec.pop("threshold", 0.5))
            if not 0 <= threshold <= 1:
                raise ValueError(f"shadow {alias!r}: threshold {threshold} is not in [0, 1]")
            current = self.learning.shadows.get(alias)
            if current is not None and self._shadow_specs.get(alias) == spec:
                shadows[alias] = (current[0], threshold)
                continue
            rc = RouterConfig.model_validate(spec).model_dump()
            cand = InProcessRouter(f"shadow_{alias}", rc)
            await asyncio.to_thread(cand.start)
            shadows[alias] = (cand, threshold)
            log.info("shadow router for %r: %s at threshold %g", alias, rc.get("source"), threshold)
        self._shadow_specs = {a: {k: v for k, v in s.items() if k != "threshold"} for a, s in specs.items()}
        self.learning.shadows = shadows

    def _set_policies(self, cfg: dict[str, Any]) -> None:
        service = self.service
        service.fallback = cfg.get("fallback", service.fallback)
        service.on_router_error = cfg.get("on_router_error", service.on_router_error)
        log.info("ingress policies: strong-model fallback=%s, on_router_error=%s",
                 service.fallback, service.on_router_error)

    def build_asgi_app(self) -> Any:
        return build_http_app(self.service, self.auth, self.max_body_bytes, self.metrics)

    __serve_build_asgi_app__ = build_asgi_app
