"""The application builder: ``build_app(args)`` turns ``AppArgs`` (``deployments.config``) into the
bound Serve application, the ingress at the root.

This is the only module of the server that calls ``serve.deployment(...)``, ``.options()`` and
``.bind()``. Every deployment option (replicas, autoscaling_config, ray_actor_options incl.
fractional num_gpus, max_ongoing_requests) comes from ``args.deployments`` (serve_config.yaml
``args:``), never from decorators. Serve's own ``deployments:`` section in serve_config.yaml may
still override them by deployment name (``Ingress``, ``WeakModel``, ``StrongModel``, ``Router_<alias>``).

    serve run serve_config.yaml                      # import_path: deployments.app:build_app
    serve.run(build_app({...}))                      # from Python, same validation
"""

from __future__ import annotations

from typing import Any

from deployments.config import AppArgs


def preflight(args: AppArgs) -> None:
    """Fail fast, before any replica starts, on routers that cannot load (with the fix in the message)."""
    from routers.errors import CheckpointError
    from routers.registry import resolve

    for r in args.routers:
        source = r.source or r.alias
        try:
            resolve(source)  # UnknownRouterError lists the known names; CheckpointError names the path
        except CheckpointError as exc:
            raise CheckpointError(
                f"router {r.alias!r}: {exc}; or give `source:` a checkpoint directory, or remove the "
                "router from serve_config.yaml"
            ) from None


def ingress_user_config(cfg: AppArgs) -> dict[str, Any]:
    """The ingress's Serve ``user_config``: the failure policies and the configuration of every router
    placed in the ingress. Changing it (serve_config.yaml's ``deployments:`` section, or ``rayroute
    promote``) reconfigures the running ingress in place: a changed router source is a hot reload."""
    return {"fallback": cfg.strong_model.fallback, "on_router_error": cfg.ingress.on_router_error,
            "routers": {r.alias: r.user_config() for r in cfg.routers if r.placement == "ingress"}}


def build_app(args: dict[str, Any] | AppArgs | None = None):
    """Validate ``args`` and return the bound Serve application (ingress at the root)."""
    from ray import serve

    from deployments.budget import BudgetState, resolve_prices
    from deployments.chat import ServedModels
    from deployments.ingress import Ingress
    from deployments.router_replica import InProcessRouter, RouterReplica
    from deployments.strong_model import StrongModel
    from deployments.weak_model import WeakModel

    cfg = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    preflight(cfg)
    cfg.check_environment()  # a tenant cap with no keys: a start-up error naming the field
    prices = resolve_prices(cfg)
    d = cfg.deployments

    routers: dict[str, Any] = {}
    local_routers: dict[str, InProcessRouter] = {}
    for r in cfg.routers:
        if r.placement == "ingress":
            local_routers[r.alias] = InProcessRouter(r.alias, r.user_config())
            continue
        # the configuration goes only as user_config: Serve hands it to reconfigure() at start
        # and on every change
        opts = (r.deployment or d.router).to_serve()
        dep = serve.deployment(RouterReplica, name=f"Router_{r.alias}").options(user_config=r.user_config(), **opts)
        routers[r.alias] = dep.bind(r.alias)

    w = cfg.weak_model
    if w.api_base_url is not None:  # a remote OpenAI-compatible weak model: the same client as the strong one
        weak = serve.deployment(StrongModel, name="WeakModel").options(**d.weak_model.to_serve()).bind(
            w.api_base_url, w.model, w.api_key_env, request_timeout_s=cfg.ingress.backend_timeout_s,
            max_retries=1, cooldown_failures=0)
    else:
        weak = serve.deployment(WeakModel, name="WeakModel").options(**d.weak_model.to_serve()).bind(
            w.model, w.served_model_name, w.engine_args(), tool_call_parser=w.tool_call_parser,
            tool_strict_level=w.tool_strict_level, max_tokens_default=w.max_tokens_default,
            kv_cache_space_gib=w.kv_cache_space_gib,
        )

    s = cfg.strong_model
    strong = serve.deployment(StrongModel, name="StrongModel").options(**d.strong_model.to_serve()).bind(
        s.base_url, s.model, s.api_key_env, request_timeout_s=s.request_timeout_s, max_retries=s.max_retries,
        backoff_initial_s=s.backoff_initial_s, backoff_max_s=s.backoff_max_s,
        cooldown_failures=s.cooldown_failures, cooldown_s=s.cooldown_s,
    )

    models = ServedModels(
        strong=s.model, weak=w.served_model_name, default_router=cfg.default_router, fallback=s.fallback,
        prices_usd_per_1m={s.model: prices["strong"], w.served_model_name: prices["weak"]},
        weak_lacks=w.lacks(), route_strong_for=frozenset(w.route_strong_for),
    )
    budget: dict[str, Any] = {}
    if cfg.budget.enabled:  # the one shared copy of the controllers
        state = serve.deployment(BudgetState, name="BudgetState").options(**d.budget_state.to_serve()).bind(
            cfg.budget.model_dump(), prices)
        budget = {"budget_state": state, "budget": cfg.budget, "budget_prices": prices,
                  "router_budgets": {r.alias: r.budget for r in cfg.routers}}
    ingress_cls = serve.ingress()(Ingress)
    return serve.deployment(ingress_cls, name="Ingress").options(
        user_config=ingress_user_config(cfg), **d.ingress.to_serve()).bind(
        routers, weak, strong, models=models, args=cfg.ingress, local_routers=local_routers, learning=cfg.learning,
        **budget)
