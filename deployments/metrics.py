"""Serving metrics: Ray Serve custom metrics (exported by Ray's Prometheus endpoint) plus an
in-process copy per replica, served at ``GET /v1/stats`` for tests and quick looks.

Exported series (Ray prefixes ``ray_``):
- ``rayroute_requests_total{router, routed_model, route}``
- ``rayroute_strong_fraction{router}``             gauge: strong calls / routed calls (this replica)
- ``rayroute_router_latency_seconds{router}``      histogram
- ``rayroute_router_cache_hits_total{router}``     decisions answered from the router's score cache
- ``rayroute_fallbacks_total{reason, from_model, to_model}``
- ``rayroute_capability_routes_total{router, feature}``  sent strong because the weak model lacks a feature
  (N-way: a better ranked model skipped because it lacks it)
- ``rayroute_estimated_cost_usd_total{model}``     from token usage x configured $ / 1M tokens
- ``rayroute_errors_total{status, code}``
- ``rayroute_labels_total{kind}``                   labels stored (judge, feedback)
- ``rayroute_label_skips_total{reason}``            sampled requests not labelled (budget, max_pending, ...)
- ``rayroute_judge_calls_total`` / ``rayroute_judge_failures_total{reason}``
- ``rayroute_label_spend_usd_total``                estimated $ of the other-model and judge calls
- ``rayroute_shadow_decisions_total{router, would_route, agree}``  a shadow candidate's decisions
- ``rayroute_nway_choices_total{router, model}``  an N-way router's first choices (before fallback);
  its decision latency goes to ``rayroute_router_latency_seconds``; requests, fallbacks and cost per
  N-way model to the series above (``route="nway"``)
- ``rayroute_router_version{router, version}``      gauge 1 for the version each router serves
- ``rayroute_router_reloads_total{router}``         hot reloads (promotions) of a router
- budget control (``deployments.budget``), per live target (router, tenant or ``-``, target):
  ``rayroute_budget_alpha``, ``rayroute_budget_target_share``, ``rayroute_budget_realised_share``
  (gauges, global: from the shared state), ``rayroute_spend_usd_total{router, tenant}`` (estimated,
  this replica's requests), ``rayroute_tenant_spend_today_usd{tenant}`` (gauge, global) and
  ``rayroute_budget_cap_hits_total{tenant, policy}``
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as _Counter
from typing import Any

log = logging.getLogger(__name__)

LATENCY_BOUNDARIES_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]


class ServingMetrics:
    """Counts requests, routes, fallbacks, latency and cost. ``export=False`` keeps it in-process
    only (no Ray needed), which is what unit tests use."""

    def __init__(self, export: bool = True) -> None:
        self._lock = threading.Lock()
        self.requests: _Counter[tuple[str, str, str]] = _Counter()
        self.fallbacks: _Counter[tuple[str, str, str]] = _Counter()
        self.errors: _Counter[tuple[int, str]] = _Counter()
        self.cost_usd: dict[str, float] = {}
        self.routed: _Counter[str] = _Counter()
        self.strong: _Counter[str] = _Counter()
        self.cache_hits: _Counter[str] = _Counter()
        self.capability_routes: _Counter[tuple[str, str]] = _Counter()
        self.nway_choices: _Counter[tuple[str, str]] = _Counter()
        self.nway_latency_sum_s: dict[str, float] = {}
        self.latency_sum_s: dict[str, float] = {}
        self.labels: _Counter[str] = _Counter()
        self.label_skips: _Counter[str] = _Counter()
        self.judge_calls = 0
        self.judge_failures: _Counter[str] = _Counter()
        self.label_spend_usd = 0.0
        self.shadow: _Counter[tuple[str, str, bool]] = _Counter()
        self.router_versions: dict[str, str] = {}
        self.router_reloads: _Counter[str] = _Counter()
        self.budget: dict[tuple[str, str, str], dict[str, float | None]] = {}
        self.spend_usd: dict[tuple[str, str], float] = {}
        self.tenant_spend_today: dict[str, float] = {}
        self.cap_hits: _Counter[tuple[str, str]] = _Counter()
        self._ray: dict[str, Any] | None = None
        if export:
            try:
                self._ray = self._make_ray_metrics()
            except Exception as exc:  # metrics must never take the service down
                log.warning("Ray metrics unavailable (%s); keeping in-process counts only", exc)

    @staticmethod
    def _make_ray_metrics() -> dict[str, Any]:
        from ray.serve import metrics as m

        return {
            "requests": m.Counter("rayroute_requests_total", description="Chat requests by router and routed model",
                                  tag_keys=("router", "routed_model", "route")),
            "strong_fraction": m.Gauge("rayroute_strong_fraction", description="Strong calls / routed calls",
                                       tag_keys=("router",)),
            "latency": m.Histogram("rayroute_router_latency_seconds", description="Routing decision latency",
                                   boundaries=LATENCY_BOUNDARIES_S, tag_keys=("router",)),
            "cache_hits": m.Counter("rayroute_router_cache_hits_total",
                                    description="Routing decisions answered from the router's score cache",
                                    tag_keys=("router",)),
            "fallbacks": m.Counter("rayroute_fallbacks_total", description="Requests served by a fallback model",
                                   tag_keys=("reason", "from_model", "to_model")),
            "capability": m.Counter("rayroute_capability_routes_total",
                                    description="Requests sent strong (N-way: past a better ranked model) because a model lacks a feature",
                                    tag_keys=("router", "feature")),
            "nway_choices": m.Counter("rayroute_nway_choices_total",
                                      description="N-way routing decisions by router and chosen model",
                                      tag_keys=("router", "model")),
            "cost": m.Counter("rayroute_estimated_cost_usd_total", description="Estimated spend in USD",
                              tag_keys=("model",)),
            "errors": m.Counter("rayroute_errors_total", description="Error responses", tag_keys=("status", "code")),
            "labels": m.Counter("rayroute_labels_total", description="Labels stored", tag_keys=("kind",)),
            "label_skips": m.Counter("rayroute_label_skips_total", description="Sampled requests not labelled",
                                     tag_keys=("reason",)),
            "judge_calls": m.Counter("rayroute_judge_calls_total", description="Judge calls"),
            "judge_failures": m.Counter("rayroute_judge_failures_total", description="Failed label collections",
                                        tag_keys=("reason",)),
            "label_spend": m.Counter("rayroute_label_spend_usd_total",
                                     description="Estimated $ of label collection (other model + judge)"),
            "shadow": m.Counter("rayroute_shadow_decisions_total", description="Shadow router decisions",
                                tag_keys=("router", "would_route", "agree")),
            "router_version": m.Gauge("rayroute_router_version", description="1 for the version a router serves",
                                      tag_keys=("router", "version")),
            "router_reloads": m.Counter("rayroute_router_reloads_total", description="Hot reloads of a router",
                                        tag_keys=("router",)),
            "budget_alpha": m.Gauge("rayroute_budget_alpha", description="Threshold the budget controller holds",
                                    tag_keys=("router", "tenant", "target")),
            "budget_target": m.Gauge("rayroute_budget_target_share", description="Strong share the controller aims at",
                                     tag_keys=("router", "tenant", "target")),
            "budget_realised": m.Gauge("rayroute_budget_realised_share",
                                       description="Strong share of the controller's recent decisions (all replicas)",
                                       tag_keys=("router", "tenant", "target")),
            "spend": m.Counter("rayroute_spend_usd_total", description="Estimated spend in USD by router and tenant",
                               tag_keys=("router", "tenant")),
            "tenant_today": m.Gauge("rayroute_tenant_spend_today_usd",
                                    description="A tenant's estimated spend this UTC day (all replicas)",
                                    tag_keys=("tenant",)),
            "cap_hits": m.Counter("rayroute_budget_cap_hits_total",
                                  description="Requests of a tenant over its daily cap", tag_keys=("tenant", "policy")),
        }

    def _emit(self, name: str, method: str, value: float, tags: dict[str, str]) -> None:
        if self._ray is None:
            return
        try:
            getattr(self._ray[name], method)(value, tags=tags)
        except Exception as exc:  # pragma: no cover - never fail a request on metrics
            log.debug("metric %s failed: %s", name, exc)

    def record_route(self, router: str, route: str, latency_s: float, cached: bool = False) -> None:
        with self._lock:
            self.routed[router] += 1
            if route == "strong":
                self.strong[router] += 1
            if cached:
                self.cache_hits[router] += 1
            self.latency_sum_s[router] = self.latency_sum_s.get(router, 0.0) + latency_s
            frac = self.strong[router] / self.routed[router]
        self._emit("latency", "observe", latency_s, {"router": router})
        self._emit("strong_fraction", "set", frac, {"router": router})
        if cached:
            self._emit("cache_hits", "inc", 1, {"router": router})

    def record_nway_choice(self, router: str, model: str, latency_s: float) -> None:
        """An N-way router ranked a request's models and chose ``model`` first."""
        with self._lock:
            self.nway_choices[(router, model)] += 1
            self.nway_latency_sum_s[router] = self.nway_latency_sum_s.get(router, 0.0) + latency_s
        self._emit("nway_choices", "inc", 1, {"router": router, "model": model})
        self._emit("latency", "observe", latency_s, {"router": router})

    def record_request(self, router: str, routed_model: str, route: str) -> None:
        with self._lock:
            self.requests[(router, routed_model, route)] += 1
        self._emit("requests", "inc", 1, {"router": router, "routed_model": routed_model, "route": route})

    def record_fallback(self, reason: str, from_model: str, to_model: str) -> None:
        with self._lock:
            self.fallbacks[(reason, from_model, to_model)] += 1
        self._emit("fallbacks", "inc", 1, {"reason": reason, "from_model": from_model, "to_model": to_model})

    def record_capability_route(self, router: str, feature: str) -> None:
        with self._lock:
            self.capability_routes[(router, feature)] += 1
        self._emit("capability", "inc", 1, {"router": router, "feature": feature})

    def record_cost(self, model: str, usd: float) -> None:
        if usd <= 0:
            return
        with self._lock:
            self.cost_usd[model] = self.cost_usd.get(model, 0.0) + usd
        self._emit("cost", "inc", usd, {"model": model})

    def record_error(self, status: int, code: str) -> None:
        with self._lock:
            self.errors[(status, code)] += 1
        self._emit("errors", "inc", 1, {"status": str(status), "code": code})

    def record_label(self, kind: str) -> None:
        with self._lock:
            self.labels[kind] += 1
        self._emit("labels", "inc", 1, {"kind": kind})

    def record_label_skip(self, reason: str) -> None:
        with self._lock:
            self.label_skips[reason] += 1
        self._emit("label_skips", "inc", 1, {"reason": reason})

    def record_judge_call(self) -> None:
        with self._lock:
            self.judge_calls += 1
        self._emit("judge_calls", "inc", 1, {})

    def record_judge_failure(self, reason: str) -> None:
        with self._lock:
            self.judge_failures[reason] += 1
        self._emit("judge_failures", "inc", 1, {"reason": reason})

    def record_label_spend(self, usd: float) -> None:
        if usd <= 0:
            return
        with self._lock:
            self.label_spend_usd += usd
        self._emit("label_spend", "inc", usd, {})

    def record_shadow(self, router: str, would_route: str, agree: bool) -> None:
        with self._lock:
            self.shadow[(router, would_route, agree)] += 1
        self._emit("shadow", "inc", 1, {"router": router, "would_route": would_route, "agree": str(agree).lower()})

    def record_router_version(self, router: str, version: str, reloaded: bool) -> None:
        with self._lock:
            old = self.router_versions.get(router)
            self.router_versions[router] = version
            if reloaded:
                self.router_reloads[router] += 1
        if old is not None and old != version:
            self._emit("router_version", "set", 0, {"router": router, "version": old})
        self._emit("router_version", "set", 1, {"router": router, "version": version})
        if reloaded:
            self._emit("router_reloads", "inc", 1, {"router": router})

    def _shadow_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (router, would, agree), n in self.shadow.items():
            s = out.setdefault(router, {"decisions": 0, "agree": 0, "would_strong": 0})
            s["decisions"] += n
            s["agree"] += n if agree else 0
            s["would_strong"] += n if would == "strong" else 0
        for s in out.values():
            s["agreement"] = s["agree"] / s["decisions"]
            s["would_strong_fraction"] = s["would_strong"] / s["decisions"]
        return out
    def record_budget(self, router: str, tenant: str, target: str, alpha: float, share: float,
                      realised: float | None) -> None:
        tags = {"router": router, "tenant": tenant, "target": target}
        with self._lock:
            self.budget[(router, tenant, target)] = {"alpha": alpha, "target_share": share, "realised_share": realised}
        self._emit("budget_alpha", "set", alpha, tags)
        self._emit("budget_target", "set", share, tags)
        if realised is not None:
            self._emit("budget_realised", "set", realised, tags)

    def record_spend(self, router: str, tenant: str, usd: float) -> None:
        if usd <= 0:
            return
        with self._lock:
            self.spend_usd[(router, tenant)] = self.spend_usd.get((router, tenant), 0.0) + usd
        self._emit("spend", "inc", usd, {"router": router, "tenant": tenant})

    def record_tenant_spend_today(self, tenant: str, usd: float) -> None:
        with self._lock:
            self.tenant_spend_today[tenant] = usd
        self._emit("tenant_today", "set", usd, {"tenant": tenant})

    def record_cap_hit(self, tenant: str, policy: str) -> None:
        with self._lock:
            self.cap_hits[(tenant, policy)] += 1
        self._emit("cap_hits", "inc", 1, {"tenant": tenant, "policy": policy})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": [{"router": r, "routed_model": m, "route": k, "count": c}
                             for (r, m, k), c in sorted(self.requests.items())],
                "strong_fraction": {r: self.strong[r] / n for r, n in self.routed.items() if n},
                "router_latency_mean_s": {r: self.latency_sum_s[r] / n for r, n in self.routed.items() if n},
                "router_decisions": dict(self.routed),
                "router_cache_hits": dict(self.cache_hits),
                "fallbacks": [{"reason": r, "from_model": f, "to_model": t, "count": c}
                              for (r, f, t), c in sorted(self.fallbacks.items())],
                "fallbacks_total": sum(self.fallbacks.values()),
                "capability_routes": [{"router": r, "feature": f, "count": c}
                                      for (r, f), c in sorted(self.capability_routes.items())],
                "nway_choices": [{"router": r, "model": m, "count": c}
                                 for (r, m), c in sorted(self.nway_choices.items())],
                "nway_latency_mean_s": {r: t / sum(c for (rr, _), c in self.nway_choices.items() if rr == r)
                                        for r, t in self.nway_latency_sum_s.items()},
                "estimated_cost_usd": dict(self.cost_usd),
                "errors": [{"status": s, "code": c, "count": n} for (s, c), n in sorted(self.errors.items())],
                "learning": {"labels": dict(self.labels), "label_skips": dict(self.label_skips),
                             "judge_calls": self.judge_calls, "judge_failures": dict(self.judge_failures),
                             "label_spend_usd": self.label_spend_usd, "shadow": self._shadow_summary()},
                "router_versions": dict(self.router_versions),
                "router_reloads": dict(self.router_reloads),
                "budget": [{"router": r, "tenant": t, "target": g, **v} for (r, t, g), v in sorted(self.budget.items())],
                "spend_usd": [{"router": r, "tenant": t, "usd": u} for (r, t), u in sorted(self.spend_usd.items())],
                "tenant_spend_today_usd": dict(self.tenant_spend_today),
                "budget_cap_hits": [{"tenant": t, "policy": p, "count": c} for (t, p), c in sorted(self.cap_hits.items())],
            }
