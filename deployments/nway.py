"""N-way routing in the ingress: predicted quality per model (a ``routers.nway`` QualityRouter,
scored in process), the request's estimated cost per model, and the ranking by the one selection
rule (``routers.nway.selection.rank``). Calling the ranked models, with fallback down the ranking,
is ``ChatService._call``'s, the same path as the two-model strong -> weak fallback.

Costs are estimates made before the call: prompt tokens from the request's text (about 4
characters a token, as ``bench.fake_openai`` and the budget's priors assume), completion tokens from
``max_completion_tokens`` / ``max_tokens`` or ``nway.default_completion_tokens``. Only their ratios
matter to the rule (``relative_cost``); the dollars are reported by ``/v1/route``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from routers.errors import ConfigError
from routers.nway.selection import Rule, rank, validate_knob

from deployments.capabilities import feature_param
from deployments.errors import ThresholdError, UnsupportedFeatureError
from deployments.protocol import NWayCandidate, NWayDecision

log = logging.getLogger("ray.serve")

#: characters per token of the prompt-token estimate
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Tokens of ``text``, estimated (about 4 characters a token; at least 1)."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass(frozen=True)
class NWayModel:
    """A model N-way routers choose among: served name, name in the routers' vocabulary, price."""

    name: str
    router_name: str
    usd_per_1m: tuple[float, float]  # (prompt, completion) $ per 1M tokens
    #: request features it cannot serve (``NWayModelArgs.lacking``)
    lacks: frozenset[str] = frozenset()

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.usd_per_1m[0] + completion_tokens * self.usd_per_1m[1]) / 1e6


def _no_prompt_cache(router: Any) -> None:
    """Serving never writes prompts to disk: an embedder built lazily from a checkpoint's name gets
    the uncached variant (training's default caches (model, text) pairs on disk)."""
    from deployments.router_replica import _no_prompt_cache as uncached

    for part in (router, getattr(router, "_embed", None)):  # quality routers keep theirs in ``_embed``
        if part is not None:
            uncached(part)


class InProcessQualityRouter:
    """One N-way router scored inside the ingress. Built light (pickled into the ingress's init
    args); ``start()`` loads the checkpoint, checks that its vocabulary has every configured model
    (UnknownModelError listing the known ones) and warms the embedder up."""

    def __init__(self, alias: str, source: str, kwargs: dict[str, Any], models: Sequence[NWayModel],
                 default_weight: float) -> None:
        self.alias = alias
        self.source = source
        self.kwargs = dict(kwargs)
        self.models = list(models)
        self.default_weight = float(default_weight)
        self._router: Any = None
        self._columns: list[int] = []

    def start(self) -> "InProcessQualityRouter":
        if self._router is None:
            from routers.nway.registry import load_quality_router

            t0 = time.perf_counter()
            router = load_quality_router(self.source, **self.kwargs)
            self._columns = router.columns([m.router_name for m in self.models])  # raises on an unknown model
            _no_prompt_cache(router)
            router.predict([f"warm-up {time.time_ns()}"])  # load the embedder now, not on the first request
            self._router = router
            log.info("N-way router %r loaded from %r in %.2fs: %s", self.alias, self.source,
                     time.perf_counter() - t0, router.describe())
        return self

    def quality(self, text: str) -> np.ndarray:
        """Predicted quality of each of ``models`` on ``text``, in their order."""
        return self.start()._router.predict([text])[0, self._columns]

    def replaced(self, source: str, kwargs: dict[str, Any]) -> "InProcessQualityRouter":
        """A copy of this router with another checkpoint (same models and default λ), not started."""
        return InProcessQualityRouter(self.alias, source, kwargs, self.models, self.default_weight)

    def describe(self) -> dict[str, Any]:
        info = self._router.describe() if self._router is not None else {}
        return {"alias": self.alias, "source": self.source, "models": [m.name for m in self.models],
                "default_cost_weight": self.default_weight, "router": info}

    def __getstate__(self) -> dict[str, Any]:  # never ship a loaded router across processes
        return {k: v for k, v in self.__dict__.items() if k not in ("_router", "_columns")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._router, self._columns = None, []


class NWayRouting:
    """The N-way routers and models of the app (``nway:``), and the decision of one request."""

    def __init__(self, routers: dict[str, InProcessQualityRouter], models: dict[str, NWayModel],
                 rule: Rule = "cost", max_fallbacks: int = 2, default_completion_tokens: int = 256) -> None:
        self.routers = dict(routers)
        self.models = dict(models)
        self.rule = rule
        self.max_fallbacks = int(max_fallbacks)
        self.default_completion_tokens = int(default_completion_tokens)

    @classmethod
    def from_args(cls, args: Any) -> "NWayRouting":
        """From ``deployments.config.NWayArgs``."""
        models = {m.name: NWayModel(m.name, m.router_name, (m.price.input_usd_per_1m_tokens,
                                                              m.price.output_usd_per_1m_tokens),
                                    m.lacking())
                  for m in args.models}
        routers = {r.alias: InProcessQualityRouter(r.alias, r.source or r.alias, r.kwargs,
                                                   [models[m.name] for m in args.router_models(r)], args.weight(r))
                   for r in args.routers}
        return cls(routers, models, args.rule, args.max_fallbacks, args.default_completion_tokens)

    def start(self) -> "NWayRouting":
        for router in self.routers.values():
            router.start()
        return self

    def user_config(self) -> dict[str, dict[str, Any]]:
        """Each router's checkpoint as the ingress's ``user_config`` holds it (``nway_routers``)."""
        return {alias: {"source": r.source, "kwargs": r.kwargs} for alias, r in self.routers.items()}

    def reload(self, alias: str, source: str, kwargs: dict[str, Any] | None = None) -> bool:
        """Load ``source`` for router ``alias`` and swap it in once it is ready (the old one serves
        until then; a checkpoint that fails to load, or lacks a model, raises and changes nothing).
        Returns whether anything changed. Blocking: run it in a worker thread."""
        if alias not in self.routers:
            raise ValueError(f"unknown N-way router {alias!r} in the ingress user_config; N-way routers: "
                             f"{sorted(self.routers)}")
        current = self.routers[alias]
        kwargs = dict(kwargs or {})
        if current.source == source and current.kwargs == kwargs:
            return False
        self.routers[alias] = current.replaced(source, kwargs).start()
        log.info("N-way router %r hot-reloaded: %s -> %s", alias, current.source, source)
        return True

    def prices_usd_per_1m(self) -> dict[str, tuple[float, float]]:
        return {name: m.usd_per_1m for name, m in self.models.items()}

    def knob(self, alias: str, given: float | None, model: str) -> float:
        """λ (τ under rule ``within``) of a request: the name's, else the router's default; a value
        the rule refuses is a 400 naming it and an example."""
        value = self.routers[alias].default_weight if given is None else given
        try:
            return validate_knob(value, self.rule)
        except ConfigError as exc:
            raise ThresholdError(f"{exc} in model {model!r}; e.g. 'router-{alias}-cost0.2'", param="model") from None

    def decide(self, alias: str, knob: float, routing_text: str, prompt_tokens: int,
               completion_tokens: int | None, tenant: str | None = None) -> NWayDecision:
        """Rank the router's models for one request (``routers.nway.selection.rank``); the first is
        the one to call, the rest the fallback order."""
        router = self.routers[alias]
        completion = completion_tokens or self.default_completion_tokens
        quality = router.quality(routing_text)
        cost = [m.cost_usd(prompt_tokens, completion) for m in router.models]
        ranked = rank([m.name for m in router.models], quality, cost, knob, self.rule)
        price = {m.name: m.usd_per_1m for m in router.models}
        candidates = [NWayCandidate(model=c.model, quality=c.quality, estimated_cost_usd=c.cost,
                                    relative_cost=c.relative_cost, score=c.score,
                                    input_usd_per_1m_tokens=price[c.model][0],
                                    output_usd_per_1m_tokens=price[c.model][1]) for c in ranked]
        return NWayDecision(router=alias, routed_model=candidates[0].model, rule=self.rule, cost_weight=knob,
                            prompt_tokens=prompt_tokens, completion_tokens=completion, candidates=candidates,
                            tenant=tenant)

    def capable(self, decision: NWayDecision, features: frozenset[str]) -> NWayDecision:
        """The decision without the candidates that lack a feature the request needs (images, audio,
        tools): a ranked request goes to the best capable one (``capability`` names what the better
        ranked ones lacked); a model named directly that lacks one, or a ranking with no capable
        model, is a 400 naming the feature and the models that serve it."""
        lacking = {name: features & m.lacks for name, m in self.models.items() if features & m.lacks}
        if not lacking:
            return decision
        able = sorted(name for name in self.models if name not in lacking)
        if not decision.candidates:  # the client named the model
            missing = lacking.get(decision.routed_model)
            if not missing:
                return decision
            raise UnsupportedFeatureError(
                f"the model {decision.routed_model!r} cannot serve {', '.join(sorted(missing))}; models that can: "
                f"{able or 'none'}", param=feature_param(missing))
        kept = [c for c in decision.candidates if c.model not in lacking]
        if not kept:
            needed = sorted(set().union(*(lacking[c.model] for c in decision.candidates)))
            raise UnsupportedFeatureError(
                f"none of router {decision.router!r}'s models can serve {', '.join(needed)}; models that can: "
                f"{able or 'none'} (a local model needs supports_images / supports_audio / tool_call_parser)",
                param=feature_param(needed))
        skipped = [c.model for c in decision.candidates[: decision.candidates.index(kept[0])]]
        reason = ",".join(sorted(set().union(*(lacking[m] for m in skipped)))) if skipped else None
        return decision.model_copy(update={"candidates": kept, "routed_model": kept[0].model, "capability": reason})

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "max_fallbacks": self.max_fallbacks,
                "routers": {a: r.describe() for a, r in self.routers.items()}}
