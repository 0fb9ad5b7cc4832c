"""One router, served: batched scoring off the event loop, hot checkpoint reload, calibration.

Plain class; ``deployments.app`` turns it into a Serve deployment (one per configured router).
Its configuration reaches it one way: Serve's ``user_config`` (serve_config.yaml / ``serve
deploy``), validated as ``RouterConfig``, goes to ``reconfigure`` at start and on every change; a
changed ``source``/``kwargs``/``reload_token`` reloads the router in place, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve

from routers.base import Router, routing_text, strong_mask, validate_threshold
from routers.calibration import read_prompts, threshold_for_fraction
from routers.registry import load_router

from deployments.config import CalibrationArgs, RouterConfig
from deployments.errors import CalibrationUnavailableError, ThresholdError
from deployments.protocol import RouterVerdict
from deployments.score_cache import ScoreCache

log = logging.getLogger("ray.serve")


def _no_prompt_cache(router: Router) -> None:
    """Serving never writes prompts to disk: an embedding router whose embedder is built lazily
    with the on-disk (model, text) cache (training's default) gets an uncached embedder instead."""
    if getattr(router, "_embedder", "absent") is None and getattr(router, "embedder_name", None):
        from routers.embeddings import embedder_from_spec

        router._embedder = embedder_from_spec(router.embedder_name, cache=False)


class RouterReplica:
    """Wraps one ``routers`` Router. ``route(text, threshold, strong_fraction)`` is the hot path.

    Serve builds it with the alias only and then calls ``reconfigure``; outside Serve (a router
    placed in the ingress, tests) pass ``config`` to build it configured. ``inline`` scores each
    request in the calling coroutine instead of the ``@serve.batch`` queue and a worker thread: for
    a router in the ingress that scores in well under a millisecond, the queue's wait and the
    thread hop cost more than the scoring."""

    def __init__(
        self,
        alias: str,
        config: RouterConfig | dict[str, Any] | None = None,
        loader: Callable[..., Router] = load_router,
        inline: bool = False,
    ) -> None:
        self.alias = alias
        self._loader = loader
        self._inline = inline
        self._config: RouterConfig | None = None
        self._router: Router | None = None
        self._cache: ScoreCache | None = None
        self._calibration: np.ndarray | None = None
        self._calibration_note = "no calibration configured"
        if config is not None:
            self.reconfigure(config)

    # --- configuration ---------------------------------------------------------------------------

    def reconfigure(self, user_config: RouterConfig | dict[str, Any]) -> bool:
        """Serve calls this with the deployment's user_config (at start and on every change).
        Returns whether the router was (re)loaded."""
        new = RouterConfig.model_validate(user_config if isinstance(user_config, RouterConfig) else dict(user_config))
        old = self._config
        if new.torch_threads and (old is None or new.torch_threads != old.torch_threads):
            from routers.models.classifier import set_threads

            set_threads(new.torch_threads)  # process-wide: this replica process serves one router
            log.info("router %r: torch intra-op threads set to %d", self.alias, new.torch_threads)
        reload_keys = ("source", "kwargs", "reload_token")
        needs_reload = self._router is None or any(getattr(new, k) != getattr(old, k) for k in reload_keys)
        router, cache = self._router, self._cache
        calibration, note = self._calibration, self._calibration_note
        if needs_reload:
            source = new.source or self.alias
            t0 = time.perf_counter()
            router = self._loader(source, **new.kwargs)
            _no_prompt_cache(router)
            log.info("router %r loaded from %r in %.2fs: %s", self.alias, source, time.perf_counter() - t0,
                     router.describe())
            t1 = time.perf_counter()
            # load lazy parts (embedders) now, not on the first request (a fresh text: a cached one
            # would skip loading the model)
            router.score([f"warm-up {time.time_ns()}"])
            log.info("router %r warmed up in %.2fs", self.alias, time.perf_counter() - t1)
        if needs_reload or new.score_cache_entries != old.score_cache_entries:
            cache = self._make_cache(router, new.score_cache_entries)  # a new router never sees the old one's scores
        if needs_reload or new.calibration != old.calibration:
            calibration, note = self._calibrate(router, new.calibration)
        # everything new is ready: swap it in at once (requests in flight keep the pair they read)
        self._router, self._cache, self._calibration, self._calibration_note = router, cache, calibration, note
        self.score_batch.set_max_batch_size(new.max_batch_size)
        self.score_batch.set_batch_wait_timeout_s(new.batch_wait_timeout_s)
        self._config = new
        return needs_reload

    def _make_cache(self, router: Router, entries: int) -> ScoreCache | None:
        if entries <= 0:
            return None
        if not router.deterministic:
            log.warning("router %r: score_cache_entries=%d ignored: this router's scores are random per "
                        "call (for random, set kwargs.per_prompt: true to hash prompts instead)", self.alias, entries)
            return None
        log.info("router %r: caching up to %d prompt scores", self.alias, entries)
        return ScoreCache(entries)

    def _calibrate(self, router: Router, cal: CalibrationArgs | None) -> tuple[np.ndarray | None, str]:
        """(sorted calibration scores of ``router``, note); (None, why) when there are none."""
        if cal is None:
            return None, "no calibration configured"
        path = Path(cal.prompts_file)
        if not path.is_file():
            note = f"calibration prompts file {str(path)!r} does not exist"
            if cal.required:
                raise FileNotFoundError(note + "; fix calibration.prompts_file or set required: false")
            log.warning("router %r: %s; strong-fraction model names are disabled", self.alias, note)
            return None, note
        # the library's reader: DataError names the file and line of a malformed or empty sample
        prompts = read_prompts(path, cal.field)[: cal.max_prompts]
        t0 = time.perf_counter()
        scores = np.asarray(router.score(prompts), dtype=np.float64)
        log.info("router %r calibrated on %d prompts in %.2fs", self.alias, len(prompts), time.perf_counter() - t0)
        return np.sort(scores), f"{len(prompts)} prompts from {path.name}"

    # --- serving ---------------------------------------------------------------------------------

    def score_now(self, texts: list[str]) -> list[tuple[float, bool]]:
        """(P(strong), came from the score cache) per text, scored in the caller's thread."""
        router, cache = self._router, self._cache  # one consistent pair, even across a reload
        if cache is not None:
            return cache.score(texts, router.score)
        return [(float(s), False) for s in np.asarray(router.score(texts), dtype=np.float64)]

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def score_batch(self, texts: list[str]) -> list[tuple[float, bool]]:
        return await asyncio.to_thread(self.score_now, texts)

    def resolve_threshold(self, threshold: float | None, strong_fraction: float | None) -> float:
        if strong_fraction is not None:
            if self._calibration is None:
                raise CalibrationUnavailableError(
                    f"router {self.alias!r} cannot take a strong fraction ({strong_fraction}): "
                    f"{self._calibration_note}; configure calibration.prompts_file for it or pass a "
                    f"threshold, e.g. 'router-{self.alias}-0.5'",
                    param="model",
                )
            return threshold_for_fraction(self._calibration, strong_fraction)
        if threshold is None:
            return self._config.default_threshold
        try:
            return validate_threshold(threshold)
        except ValueError as exc:
            raise ThresholdError(str(exc), param="model") from None

    async def route(
        self,
        messages_or_text: list[dict[str, Any]] | str,
        threshold: float | None = None,
        strong_fraction: float | None = None,
    ) -> RouterVerdict:
        """Score one conversation and apply the threshold rule."""
        alpha = self.resolve_threshold(threshold, strong_fraction)
        text = routing_text(messages_or_text)
        cache = self._cache
        hit = cache.get(text) if cache is not None else None
        if hit is not None:
            # answered here, not in the batch queue: a hit must not wait behind misses being scored
            p, cached = hit, True
        elif self._inline:
            p, cached = self.score_now([text])[0]
        else:
            p, cached = await self.score_batch(text)
        strong = bool(strong_mask([p], alpha)[0])
        return RouterVerdict(p_strong=p, threshold=alpha, strong=strong, cached=cached)

    def describe(self) -> dict[str, Any]:
        info = dict(self._router.describe()) if self._router is not None else {}
        return {
            "alias": self.alias,
            "router": info,
            "default_threshold": self._config.default_threshold if self._config is not None else None,
            "calibration": self._calibration_note,
            "calibrated": self._calibration is not None,
            "score_cache": self._cache.stats() if self._cache is not None else None,
        }

    def check_health(self) -> None:
        if self._router is None:
            raise RuntimeError(f"router {self.alias!r} is not loaded")


class _Method:
    """``obj.method.remote(...)``, the call shape of a Serve handle, for an in-process coroutine."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)  # a coroutine: awaited like a DeploymentResponse


class InProcessRouter:
    """A router scored inside the ingress process (``placement: ingress``), behind the same
    ``route.remote(...)`` interface as a router deployment's handle.

    Why: each Serve hop costs milliseconds on a busy node, which is the whole routing overhead for a
    router that scores in microseconds (static embeddings, random, length). Such a router scales
    with the ingress replicas instead of on its own, and scores inline (no batch queue, no worker
    thread). Built light (it is pickled into the ingress's init args); ``start()`` loads the router
    in the ingress process.
    """

    def __init__(self, alias: str, config: dict[str, Any]) -> None:
        self.alias = alias
        self.config = dict(config)
        self._replica: RouterReplica | None = None
        self.route = _Method(self._route)

    def start(self) -> "InProcessRouter":
        if self._replica is None:
            self._replica = RouterReplica(self.alias, self.config, inline=True)
        return self

    async def _route(self, *args: Any, **kwargs: Any) -> RouterVerdict:
        return await self.start()._replica.route(*args, **kwargs)

    def reconfigure(self, config: dict[str, Any]) -> bool:
        """Apply a new configuration in place (a changed source loads the new router, then swaps it
        in; requests in flight finish on the old one). Returns whether the router was reloaded."""
        replica = self.start()._replica
        reloaded = replica.reconfigure(config)
        self.config = dict(config)
        return reloaded

    def __getstate__(self) -> dict[str, Any]:  # never ship a loaded router across processes
        return {"alias": self.alias, "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["alias"], state["config"])
