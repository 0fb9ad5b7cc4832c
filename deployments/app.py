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

from deployments.config import AppArgs, NWayArgs


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
    if args.nway is not None:
        preflight_nway(args.nway)


def preflight_nway(nway: "NWayArgs") -> None:
    """Each N-way router's checkpoint loads and knows every model it is to choose among (its
    vocabulary, by router_name): else a start-up error naming the router and the known models. The
    load is light (a kNN's embedder is built on first use, in the ingress)."""
    from routers.errors import CheckpointError, UnknownModelError
    from routers.nway.registry import load_quality_router

    for i, r in enumerate(nway.routers):
        where = f"nway.routers[{i}] ({r.alias!r})"
        try:
            router = load_quality_router(r.source or r.alias, **r.kwargs)
        except CheckpointError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        try:
            router.columns([m.router_name for m in nway.router_models(r)])
        except UnknownModelError as exc:
            raise UnknownModelError(f"{where}: {exc}; set nway.models[].router_name to its name there") from None


def ingress_user_config(cfg: AppArgs) -> dict[str, Any]:
    """The ingress's Serve ``user_config``: the failure policies and the configuration of every router
    placed in the ingress. Changing it (serve_config.yaml's ``deployments:`` section, or ``rayroute
    promote``) reconfigures the running ingress in place: a changed router source is a hot reload."""
    out = {"fallback": cfg.strong_model.fallback, "on_router_error": cfg.ingress.on_router_error,
           "routers": {r.alias: r.user_config() for r in cfg.routers if r.placement == "ingress"}}
    if cfg.nway is not None:  # N-way routers score in the ingress: a changed source is a hot reload too
        out["nway_routers"] = {r.alias: {"source": r.source or r.alias, "kwargs": r.kwargs} for r in cfg.nway.routers}
    return out


def build_app(args: dict[str, Any] | AppArgs | None = None):
    """Validate ``args`` and return the bound Serve application (ingress at the root)."""
    from ray import serve

    from deployments.budget import BudgetState, resolve_prices
    from deployments.chat import ServedModels
    from deployments.config import DeploymentOptions, RemoteApiArgs, WeakModelArgs
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

    def local_model(w: WeakModelArgs, name: str, opts: DeploymentOptions) -> Any:
        if w.api_base_url is not None:  # a remote OpenAI-compatible weak model: the same client as the strong one
            return serve.deployment(StrongModel, name=name).options(**opts.to_serve()).bind(
                w.api_base_url, w.model, w.api_key_env, request_timeout_s=cfg.ingress.backend_timeout_s,
                max_retries=1, cooldown_failures=0)
        return serve.deployment(WeakModel, name=name).options(**opts.to_serve()).bind(
            w.model, w.served_model_name, w.engine_args(), tool_call_parser=w.tool_call_parser,
            tool_strict_level=w.tool_strict_level, max_tokens_default=w.max_tokens_default,
            kv_cache_space_gib=w.kv_cache_space_gib,
        )

    def remote_model(s: RemoteApiArgs, name: str, opts: DeploymentOptions) -> Any:
        return serve.deployment(StrongModel, name=name).options(**opts.to_serve()).bind(**s.client_args())

    w = cfg.weak_model
    weak = local_model(w, "WeakModel", d.weak_model)
    s = cfg.strong_model
    strong = remote_model(s, "StrongModel", d.strong_model)

    nway: dict[str, Any] = {}
    prices_usd_per_1m = {s.model: prices["strong"], w.served_model_name: prices["weak"]}
    if cfg.nway is not None:  # N-way models reuse the weak and strong deployments' classes
        from deployments.nway import NWayRouting

        backends = {m.name: (remote_model(m.remote, m.deployment_name(), m.deployment or d.strong_model)
                             if m.remote is not None else
                             local_model(m.local, m.deployment_name(), m.deployment or d.weak_model))
                    for m in cfg.nway.models}
        routing = NWayRouting.from_args(cfg.nway)
        nway = {"nway": routing, "nway_backends": backends}
        prices_usd_per_1m.update(routing.prices_usd_per_1m())

    models = ServedModels(
        strong=s.model, weak=w.served_model_name, default_router=cfg.default_router, fallback=s.fallback,
        prices_usd_per_1m=prices_usd_per_1m,
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
        **budget, **nway)
