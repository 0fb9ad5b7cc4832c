"""The no-op app for overhead measurements: the same shape as the router app's routing path, but
the router returns a constant instead of scoring. The constant router sits where the measured
router sits: in its own deployment (FastAPI ingress -> one Serve hop) for ``placement: replica``,
inside the ingress process (no hop) for ``placement: ingress``, so the ratio compares like with like.

``rayroute bench-overhead`` serves it (``build_noop_app``) beside the real app (``/noop``) and
load-tests both in one run, so "what routing costs through Serve" is a ratio measured side by side.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request

from deployments.config import AppArgs
from deployments.protocol import RouterVerdict


class ConstantRouter:
    """Answers every routing call with the same decision, without looking at the prompt."""

    async def route(self, messages: Any, threshold: float | None = None,
                    strong_fraction: float | None = None) -> RouterVerdict:
        return RouterVerdict(p_strong=0.0, threshold=0.5, strong=False)


class NoopIngress:
    """POST /v1/route: parse the JSON body, call the constant deployment, answer its decision."""

    def __init__(self, router: Any = None, weak_model_name: str = "weak") -> None:
        self.router = router  # a deployment handle, or None: the constant router lives in this process
        self.local = ConstantRouter() if router is None else None
        self.weak_model_name = weak_model_name

    def build_asgi_app(self) -> Any:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        ingress = self

        @app.post("/v1/route")
        async def route(request: Request):
            data = json.loads(await request.body())
            if ingress.local is not None:
                out = await ingress.local.route(data.get("messages"), None, None)
            else:
                out = await ingress.router.route.remote(data.get("messages"), None, None)
            return {"router": "noop", "route": "weak", "routed_model": ingress.weak_model_name,
                    "p_strong": out.p_strong, "threshold": out.threshold, "strong_fraction": None}

        @app.get("/health")
        async def health():
            return {"status": "ok"}

        return app

    __serve_build_asgi_app__ = build_asgi_app


def build_noop_app(args: dict[str, Any] | AppArgs | None = None):
    """The no-op app with the SAME deployment options and router placement as the router app's
    first router (from the same ``AppArgs``), so only the work done differs."""
    from ray import serve

    cfg = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    d = cfg.deployments
    first = cfg.routers[0]
    ingress_cls = serve.ingress()(NoopIngress)
    if first.placement == "ingress":
        return serve.deployment(ingress_cls, name="NoopIngress").options(**d.ingress.to_serve()).bind(
            None, weak_model_name=cfg.weak_model.served_model_name)
    router_opts = (first.deployment or d.router).to_serve()
    router = serve.deployment(ConstantRouter, name="NoopRouter").options(**router_opts).bind()
    return serve.deployment(ingress_cls, name="NoopIngress").options(**d.ingress.to_serve()).bind(
        router, weak_model_name=cfg.weak_model.served_model_name)
