"""Live budget control in the server: the shared state (``BudgetState``, one Serve replica) and the
ingress side (``BudgetClient``, one per ingress replica).

Who holds what:

- ``BudgetState`` keeps one ``routers.budget.ShareController`` (and ``CostTracker``) per live target
  key ``<router>:<tenant or ->:<target>``, and each tenant's spend of the current UTC day. It is the
  only copy, so a target holds **globally** over any number of ingress replicas, and a restarted
  ingress replica takes it back at its first sync.
- ``BudgetClient`` is on the hot path. A decision reads the last α it has for the key (a dict look-up;
  never a call) and appends the router's score, the decision and later the request's cost to a
  pending report. A background task sends the report every ``sync_interval_s`` and takes back α, the
  share each key holds and the tenants' spend. A failed or slow sync is retried with the report kept;
  the decisions go on with the last α.

Prices (``resolve_prices``): ``strong_price`` / ``weak_price`` from the config, or with
``budget.price_source: genai_prices`` the strong model's price from the ``genai-prices`` package
(pydantic's maintained price table of LLM APIs; it ships a snapshot, so no network is needed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from routers.budget import CostTracker, ShareController, Target
from routers.errors import ConfigError

from deployments.config import AppArgs, BudgetArgs, BudgetTargetArgs, TenantArgs
from deployments.errors import BudgetExceededError, InvalidRequestError
from deployments.metrics import ServingMetrics
from deployments.protocol import ModelSelection

log = logging.getLogger("ray.serve")

#: (USD per 1M prompt tokens, USD per 1M completion tokens)
Price = tuple[float, float]


def resolve_prices(cfg: AppArgs, lookup: Callable[[str], Price] | None = None) -> dict[str, Price]:
    """{"strong": price, "weak": price} from the configured source. ``genai_prices`` looks the strong
    model's name up in the package's table; an unknown name is a start-up error naming the field."""
    weak = (cfg.weak_price.input_usd_per_1m_tokens, cfg.weak_price.output_usd_per_1m_tokens)
    strong = (cfg.strong_price.input_usd_per_1m_tokens, cfg.strong_price.output_usd_per_1m_tokens)
    if cfg.budget.price_source == "genai_prices":
        try:
            strong = (lookup or genai_price)(cfg.strong_model.model)
        except LookupError as exc:
            raise ConfigError(
                f"budget.price_source is genai_prices but strong_model.model {cfg.strong_model.model!r} is not in "
                f"its table ({exc}); use the provider's model name or set budget.price_source: config "
                "and strong_price") from None
    return {"strong": strong, "weak": weak}


def genai_price(model: str) -> Price:
    """The model's list price per 1M tokens from the genai-prices package (its bundled snapshot)."""
    try:
        import genai_prices
    except ImportError:
        raise ConfigError("budget.price_source: genai_prices needs the package: pip install genai-prices") from None
    calc = genai_prices.calc_price(genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000), model)
    return float(calc.input_price), float(calc.output_price)


def usd(price: Price, prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


def utc_day(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d")


def seconds_to_next_utc_day(t: float) -> int:
    now = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    nxt = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((nxt - now).total_seconds()) + 1)


def target_of(args: BudgetTargetArgs) -> Target:
    return Target(*args.kind_value())


# --- the shared state ------------------------------------------------------------------------------


class _Key:
    def __init__(self, target: Target, controller: ShareController, costs: CostTracker) -> None:
        self.target, self.controller, self.costs = target, controller, costs


class BudgetState:
    """The one shared copy of the controllers and the tenants' daily spend (a Serve deployment with
    one replica; ``deployments.app`` binds it). Plain class: unit tests call it directly."""

    def __init__(self, settings: dict[str, Any], prices: dict[str, Price], clock: Callable[[], float] = time.time) -> None:
        self.settings = BudgetArgs.model_validate(settings)
        self.prices = {k: (float(v[0]), float(v[1])) for k, v in prices.items()}
        self.clock = clock
        self.keys: OrderedDict[str, _Key] = OrderedDict()
        self.router_scores: dict[str, deque[float]] = {}
        self.day = utc_day(clock())
        self.tenant_usd: dict[str, float] = {}
        self.syncs = 0

    def _prior_usd(self, route: str) -> float:
        s = self.settings
        return usd(self.prices.get(route, (0.0, 0.0)), s.assumed_prompt_tokens, s.assumed_completion_tokens)

    def _key(self, key: str, router: str, target: Target) -> _Key:
        k = self.keys.get(key)
        if k is not None:
            self.keys.move_to_end(key)
            return k
        s = self.settings
        share = target.value if target.kind == "share" else 0.5
        ctl = ShareController(share, window=s.window_requests, horizon=s.horizon_requests, memory=s.memory_requests,
                              prior_scores=self.router_scores.get(router, ()))  # a new key starts from its router's recent scores
        k = self.keys[key] = _Key(target, ctl, CostTracker(self._prior_usd("strong"), self._prior_usd("weak")))
        while len(self.keys) > s.max_targets:
            dropped, _ = self.keys.popitem(last=False)
            log.info("budget: %d targets held (max_targets); dropped the least recently used %r", s.max_targets, dropped)
        return k

    def sync(self, replica: str, report: dict[str, Any]) -> dict[str, Any]:
        """Take one ingress replica's report, answer every key's α and share and the tenants' spend.

        ``report``: ``{"keys": {key: {"router", "kind", "value", "scores": [...], "strong": [...],
        "costs": [[route, usd], ...]}}, "tenant_usd": {tenant: usd}}``."""
        now = self.clock()
        day = utc_day(now)
        if day != self.day:
            self.day, self.tenant_usd = day, {}
        for key, r in (report.get("keys") or {}).items():
            k = self._key(key, r["router"], Target(r["kind"], float(r["value"])))
            scores, strong = r.get("scores") or [], r.get("strong") or []
            k.controller.observe(scores, strong)
            if scores:
                self.router_scores.setdefault(r["router"], deque(maxlen=self.settings.window_requests)).extend(scores)
            for route, cost in r.get("costs") or []:
                k.costs.record_cost(route, cost)
            k.costs.record_requests(now, len(scores))
            if k.target.kind != "share":
                k.controller.set_target(k.costs.share_for(k.target, now))
        if report.get("day", self.day) == self.day:  # spend from yesterday's report is yesterday's
            for tenant, spent in (report.get("tenant_usd") or {}).items():
                self.tenant_usd[tenant] = self.tenant_usd.get(tenant, 0.0) + float(spent)
        self.syncs += 1
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        out = {}
        for key, k in self.keys.items():
            c = k.controller
            out[key] = {"target": k.target.label(), "alpha": c.alpha, "share": c.target_share,
                        "realised_share": c.realised_share(), "decisions": c.n, "strong": c.n_strong,
                        "usd_per_strong": k.costs.usd["strong"], "usd_per_weak": k.costs.usd["weak"]}
        return {"keys": out, "day": self.day, "tenant_usd": dict(self.tenant_usd), "syncs": self.syncs}

    def check_health(self) -> None:
        return None


# --- the ingress side --------------------------------------------------------------------------------


async def _await(response: Any) -> Any:
    return await response


class BudgetClient:
    """One ingress replica's view of the shared budget state (see the module doc). ``state`` is the
    ``BudgetState`` deployment's handle (or anything with its ``sync.remote`` call shape)."""

    def __init__(self, state: Any, args: BudgetArgs, router_targets: dict[str, BudgetTargetArgs | None],
                 prices: dict[str, Price], metrics: ServingMetrics, replica: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.args = args
        self.router_targets = {a: target_of(t) for a, t in router_targets.items() if t is not None}
        self.tenants: dict[str, TenantArgs] = {t.name: t for t in args.tenants}
        self.prices = prices
        self.metrics = metrics
        self.replica = replica or f"ingress-{os.getpid()}"
        self.clock = clock
        self.alphas: dict[str, float] = {}
        self.shares: dict[str, float] = {}
        self.view: dict[str, Any] = {"keys": {}, "tenant_usd": {}, "day": utc_day(clock())}
        self._pending: dict[str, dict[str, Any]] = {}
        self._pending_usd: dict[str, float] = {}
        self._labels: dict[str, tuple[str, str, str]] = {}
        self._targets: dict[str, Target] = {}
        self._task: asyncio.Task | None = None
        self.autosync = True  # tests drive sync_once themselves
        self.synced_once = False
        self.sync_failures = 0
        self.observed = 0  # decisions this replica fed to the shared state

    # --- which target a request holds ------------------------------------------------------------

    def target_for(self, sel: ModelSelection, tenant: str | None) -> tuple[str, Target] | None:
        """(key, target) for a routed request that budget control holds, else None (a static α).
        An explicit threshold is always static; then the name's strong<f> / usd<x>, the tenant's
        target, the router's target."""
        if sel.threshold is not None or sel.router is None:
            return None
        if sel.usd_per_hour is not None:
            target = Target("usd_per_hour", sel.usd_per_hour)
        elif sel.strong_fraction is not None:
            target = Target("share", sel.strong_fraction)
        elif tenant in self.tenants and self.tenants[tenant].budget is not None:
            target = target_of(self.tenants[tenant].budget)
        elif sel.router in self.router_targets:
            target = self.router_targets[sel.router]
        else:
            return None
        key = f"{sel.router}:{tenant or '-'}:{target.label()}"
        if key not in self._labels:
            self._labels[key] = (sel.router, tenant or "-", target.label())
            self._targets[key] = target
            while len(self._labels) > self.args.max_targets:  # client-chosen names: bounded, as in the state
                old = next(iter(self._labels))
                self._labels.pop(old)
                self._targets.pop(old, None)
        return key, target

    # --- the hot path ----------------------------------------------------------------------------

    def alpha(self, key: str, target: Target) -> float:
        """The last α the shared state gave for ``key``; a key it has not seen yet starts at 1 - share
        (for a dollar target: 0.5) until the next sync."""
        a = self.alphas.get(key)
        if a is None:
            a = 1.0 - target.value if target.kind == "share" else 0.5
        return a

    def share(self, key: str, target: Target) -> float:
        return self.shares.get(key, target.value if target.kind == "share" else float("nan"))

    def _entry(self, key: str, target: Target) -> dict[str, Any]:
        e = self._pending.get(key)
        if e is None:
            router = (self._labels.get(key) or _split_key(key))[0]
            e = self._pending[key] = {"router": router, "kind": target.kind, "value": target.value,
                                      "scores": [], "strong": [], "costs": []}
        return e

    def observe(self, key: str, target: Target, p_strong: float, strong: bool) -> None:
        self.observed += 1
        e = self._entry(key, target)
        e["scores"].append(float(p_strong))
        e["strong"].append(bool(strong))

    def record_cost(self, key: str | None, route: str, tenant: str | None, usd_: float) -> None:
        """A served request's estimated cost: for its key's dollar conversion and its tenant's cap."""
        if key is not None and key in self._targets:
            self._entry(key, self._targets[key])["costs"].append([route, float(usd_)])
        if tenant is not None and usd_ > 0:
            self._pending_usd[tenant] = self._pending_usd.get(tenant, 0.0) + float(usd_)

    def spent_today(self, tenant: str) -> float:
        synced = self.view["tenant_usd"].get(tenant, 0.0) if self.view.get("day") == utc_day(self.clock()) else 0.0
        return synced + self._pending_usd.get(tenant, 0.0)

    def cap(self, tenant: str | None) -> str | None:
        """None when the tenant may spend; "weak" when its cap is spent and its policy sends weak;
        raises BudgetExceededError (429) when the policy is reject."""
        t = self.tenants.get(tenant) if tenant else None
        if t is None or t.daily_cap_usd is None:
            return None
        spent = self.spent_today(tenant)
        if spent < t.daily_cap_usd:
            return None
        self.metrics.record_cap_hit(tenant, t.on_cap)
        if t.on_cap == "weak":
            return "weak"
        raise BudgetExceededError(
            f"tenant {tenant!r} has spent its daily budget (${spent:.4f} of ${t.daily_cap_usd:g}, "
            "budget.tenants[].daily_cap_usd); retry after the next UTC midnight or raise the cap",
            retry_after_s=seconds_to_next_utc_day(self.clock()))

    # --- syncing -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background sync on the running event loop (idempotent; no-op without a loop)."""
        if not self.autosync:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        self._task = loop.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await self.sync_once()
            await asyncio.sleep(self.args.sync_interval_s)

    def _take_report(self) -> dict[str, Any]:
        report = {"keys": self._pending, "tenant_usd": self._pending_usd, "day": utc_day(self.clock())}
        self._pending, self._pending_usd = {}, {}
        return report

    def _restore(self, report: dict[str, Any]) -> None:
        """Put a report that did not reach the state back in front of what came since (bounded)."""
        for key, old in report["keys"].items():
            new = self._pending.get(key)
            if new is None:
                self._pending[key] = old
            else:
                for f in ("scores", "strong", "costs"):
                    new[f] = (old[f] + new[f])[-self.args.window_requests * 10:]
        for tenant, spent in report["tenant_usd"].items():
            self._pending_usd[tenant] = self._pending_usd.get(tenant, 0.0) + spent

    async def sync_once(self) -> bool:
        report = self._take_report()
        try:
            view = await asyncio.wait_for(_await(self.state.sync.remote(self.replica, report)),
                                          self.args.sync_timeout_s)
        except asyncio.CancelledError:
            self._restore(report)
            raise
        except Exception as exc:
            self._restore(report)
            self.sync_failures += 1
            if self.sync_failures in (1, 10) or self.sync_failures % 100 == 0:
                log.warning("budget sync failed %d time(s) (%s); deciding with the last alpha",
                            self.sync_failures, type(exc).__name__)
            return False
        self.apply(view)
        return True

    def apply(self, view: dict[str, Any]) -> None:
        """Take the shared state's answer: α and share per key, the tenants' spend; export metrics."""
        self.view = view
        keys = view.get("keys", {})
        self.alphas = {k: float(v["alpha"]) for k, v in keys.items()}
        self.shares = {k: float(v["share"]) for k, v in keys.items()}
        self.synced_once = True
        self.sync_failures = 0
        for key, v in keys.items():
            router, tenant, target = self._labels.get(key) or _split_key(key)
            self.metrics.record_budget(router, tenant, target, v["alpha"], v["share"], v.get("realised_share"))
        for tenant, spent in view.get("tenant_usd", {}).items():
            self.metrics.record_tenant_spend_today(tenant, spent)

    def snapshot(self) -> dict[str, Any]:
        return {**self.view, "replica": self.replica, "synced": self.synced_once, "replica_decisions": self.observed}

    def require_enabled(self) -> None:  # pragma: no cover - symmetry with the disabled case
        return None


def _split_key(key: str) -> tuple[str, str, str]:
    router, tenant, target = (key.split(":", 2) + ["", ""])[:3]
    return router, tenant, target


def budget_off_error(model: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"model {model!r} asks for a dollar target, but budget control is off on this server; set "
        "budget.enabled: true in serve_config.yaml, or use 'router-<name>-strong<fraction>'", param="model",
        code="budget_control_off")
