"""The front door: an OpenAI-compatible FastAPI app (``deployments.http``) over the chat service
(``deployments.chat``), as one Serve deployment class.

Routes: POST /v1/chat/completions (plain + SSE), POST /v1/route, GET /v1/models, GET /v1/stats,
GET /health. Plain class; ``deployments.app`` wraps it with ``serve.ingress()`` (late-bound ASGI
app: ``__serve_build_asgi_app__``) and ``serve.deployment``. ``build_asgi_app`` also works without
Ray (any objects with the handle interface), which is how it is exercised in isolation.
"""

from __future__ import annotations

import logging
from typing import Any

from deployments.budget import BudgetClient
from deployments.chat import ChatService, ServedModels
from deployments.config import BudgetArgs, BudgetTargetArgs, IngressArgs
from deployments.http import ApiKeyAuth, build_http_app
from deployments.metrics import ServingMetrics

log = logging.getLogger("ray.serve")

#: Serve's user_config of the ingress: the failure policies, changeable in place, and their choices
POLICIES: dict[str, tuple[str, ...]] = {"fallback": ("weak", "error"), "on_router_error": ("error", "weak", "strong")}


class Ingress:
    """``routers``: alias -> handle of a router deployment. ``local_routers``: alias -> router
    scored in this process (``placement: ingress``), started here so that they load when the
    ingress starts, not on their first request."""

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
        budget_state: Any = None,
        budget: BudgetArgs | None = None,
        router_budgets: dict[str, BudgetTargetArgs | None] | None = None,
        budget_prices: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        local_routers = dict(local_routers or {})
        for router in local_routers.values():
            router.start()
        self.metrics = metrics if metrics is not None else ServingMetrics(export=True)
        client = None
        if budget is not None and budget.enabled and budget_state is not None:
            client = BudgetClient(budget_state, budget, router_budgets or {}, budget_prices or {}, self.metrics)
            client.start()  # when Serve builds replicas on a running loop; else at the first controlled request
        self.service = ChatService({**routers, **local_routers}, weak, strong, models, args, self.metrics, budget=client)
        tenant_envs = {t.name: t.api_keys_env for t in budget.tenants} if budget is not None else {}
        self.auth = ApiKeyAuth(args.api_keys_env, tenant_envs)
        self.max_body_bytes = args.max_body_bytes

    def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        """Serve's user_config: ``{"fallback": "weak"|"error", "on_router_error":
        "error"|"weak"|"strong"}``; absent keys keep their value. Bad values raise (Serve keeps the old
        replica), naming the value and the choices."""
        cfg = dict(user_config or {})
        unknown = sorted(set(cfg) - set(POLICIES))
        if unknown:
            raise ValueError(f"unknown ingress user_config keys {unknown}; known: {sorted(POLICIES)}")
        for key, allowed in POLICIES.items():
            if key in cfg and cfg[key] not in allowed:
                raise ValueError(f"ingress user_config {key}={cfg[key]!r} is not one of {list(allowed)}")
        service = self.service
        service.fallback = cfg.get("fallback", service.fallback)
        service.on_router_error = cfg.get("on_router_error", service.on_router_error)
        log.info("ingress policies: strong-model fallback=%s, on_router_error=%s",
                 service.fallback, service.on_router_error)

    def build_asgi_app(self) -> Any:
        return build_http_app(self.service, self.auth, self.max_body_bytes, self.metrics)

    __serve_build_asgi_app__ = build_asgi_app
