"""Learning from traffic inside the ingress: label collection with a judge, the feedback book, and
shadow scoring of a candidate router. Off the response path: a client never waits for any of it,
and nothing here can fail a request (every failure is logged and counted).

- ``LabelCollector``: for a sampled share of routed chat answers (``learning.sample_rate``), within
  ``learning.budget_usd_per_hour`` (rolling hour, estimated from token usage and prices), it asks
  the *other* model the same request, has the judge compare both answers in both orders
  (``routers.learning.judge``) and appends the label to the store (``routers.learning.store``).
- ``FeedbackBook``: what an answer was (prompt, router, P(strong), model) by its request id, for
  ``POST /v1/feedback`` within ``feedback_ttl_s``; one verdict per answer.
- ``ShadowScorer``: candidate routers that score the same prompts after the answer and only count
  (and log) what they would have decided.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from routers.learning import judge as judge_protocol
from routers.learning.labels import feedback_record, judge_record
from routers.learning.store import LabelWriter

from deployments.config import LearningArgs
from deployments.errors import ConflictError, NotFoundError
from deployments.metrics import ServingMetrics

log = logging.getLogger("ray.serve")


def default_judge_client(base_url: str, api_key: str, timeout_s: float) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=1)


def _text(result: dict[str, Any]) -> str | None:
    try:
        content = result["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) and content.strip() else None


def _usd(usage: Any, price: tuple[float, float]) -> float:
    if not usage:
        return 0.0
    get = usage.get if isinstance(usage, dict) else (lambda k, d=0: getattr(usage, k, d) or d)
    return (get("prompt_tokens", 0) * price[0] + get("completion_tokens", 0) * price[1]) / 1e6


@dataclass
class Answered:
    """What the feedback book keeps about one routed answer."""

    prompt: str
    router: str
    p_strong: float | None
    routed_model: str
    by_strong: bool
    at: float
    used: bool = False


class FeedbackBook:
    """request id -> ``Answered``, bounded (oldest dropped) and expiring after ``ttl_s``."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: collections.OrderedDict[str, Answered] = collections.OrderedDict()

    def remember(self, request_id: str, prompt: str, router: str, p_strong: float | None, routed_model: str,
                 by_strong: bool) -> None:
        self._entries[request_id] = Answered(prompt, router, p_strong, routed_model, by_strong, self._clock())
        self._entries.move_to_end(request_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def take(self, request_id: str) -> Answered:
        """The answer for one verdict; NotFoundError (unknown, expired), ConflictError (already given)."""
        entry = self._entries.get(request_id)
        if entry is None:
            raise NotFoundError(f"no routed answer with x-request-id {request_id[:80]!r} on this server; send the "
                                "x-request-id header of a routed chat answer (direct model calls take no feedback)",
                                param="request_id", code="unknown_request_id")
        if self._clock() - entry.at > self.ttl_s:
            raise NotFoundError(f"the answer {request_id[:80]!r} is older than learning.feedback_ttl_s "
                                f"({self.ttl_s:g} s) and takes no feedback any more", param="request_id",
                                code="request_id_expired")
        if entry.used:
            raise ConflictError(f"the answer {request_id[:80]!r} already has feedback; one verdict per answer",
                                param="request_id", code="duplicate_feedback")
        entry.used = True
        return entry

    def __len__(self) -> int:
        return len(self._entries)


class SpendWindow:
    """Estimated $ spent in the last hour."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._events: collections.deque[tuple[float, float]] = collections.deque()
        self._total = 0.0

    def add(self, usd: float) -> None:
        if usd > 0:
            self._events.append((self._clock(), usd))
            self._total += usd

    def last_hour(self) -> float:
        cutoff = self._clock() - 3600.0
        while self._events and self._events[0][0] < cutoff:
            self._total -= self._events.popleft()[1]
        return max(self._total, 0.0)


class Learning:
    """The ingress's learning side: collection, feedback and shadow scoring (module docstring).

    ``call_model(route, payload)`` calls the strong or weak model (the chat service's handles);
    ``writer`` appends to the label store; ``judge_client_factory`` builds the judge's AsyncOpenAI."""

    def __init__(self, args: LearningArgs, strong: str, weak: str, prices_usd_per_1m: dict[str, tuple[float, float]],
                 call_model: Callable[[str, dict[str, Any]], Any], metrics: ServingMetrics,
                 writer: LabelWriter | None = None,
                 judge_client_factory: Callable[[str, str, float], Any] = default_judge_client,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.args = args
        self.strong, self.weak = strong, weak
        self.prices = prices_usd_per_1m
        self.call_model = call_model
        self.metrics = metrics
        self._writer = writer
        self._judge_factory = judge_client_factory
        self._judge = None
        self.rng = random.Random(args.seed)
        self.spend = SpendWindow(clock)
        self.pending: set[asyncio.Task] = set()
        self.book = FeedbackBook(args.feedback_ttl_s, args.feedback_max_entries, clock) if args.feedback else None
        self.shadows: dict[str, tuple[Any, float]] = {}  # served router alias -> (candidate, threshold)
        if args.enabled:
            log.warning("learning: %s%s on; prompts of labelled requests are stored in %s",
                        "label collection" if args.collect else "", " + feedback" if args.feedback else "", args.store)

    @property
    def writer(self) -> LabelWriter:
        if self._writer is None:
            self._writer = LabelWriter(self.args.store)
        return self._writer

    def _judge_client(self) -> Any:
        if self._judge is None:
            j = self.args.judge
            key = os.environ.get(j.api_key_env, "")
            if not key:
                log.warning("learning: no judge API key in $%s; sending none", j.api_key_env)
            self._judge = self._judge_factory(j.base_url, key or "none", j.request_timeout_s)
        return self._judge

    # --- after each routed answer ----------------------------------------------------------------

    def after_answer(self, request_id: str, prompt: str, payload: dict[str, Any], router: str, p_strong: float | None,
                     route: str, used_model: str, answer: dict[str, Any] | None) -> None:
        """Called once a routed answer is ready (before it is sent; nothing here is awaited)."""
        if self.book is not None:
            self.book.remember(request_id, prompt, router, p_strong, used_model, used_model == self.strong)
        for alias, (candidate, threshold) in list(self.shadows.items()):
            if alias == router and p_strong is not None:
                self._spawn(self._shadow(alias, candidate, threshold, request_id, prompt, route))
        if not self.args.collect or answer is None:
            return
        if self.rng.random() >= self.args.sample_rate:
            return
        if self.spend.last_hour() >= self.args.budget_usd_per_hour:
            self.metrics.record_label_skip("budget")
            return
        if len(self.pending) >= self.args.max_pending:
            self.metrics.record_label_skip("max_pending")
            return
        text = _text(answer)
        if text is None:
            self.metrics.record_label_skip("empty_answer")
            return
        self._spawn(self._collect(request_id, prompt, payload, router, p_strong, used_model, text))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _collect(self, request_id: str, prompt: str, payload: dict[str, Any], router: str,
                       p_strong: float | None, used_model: str, answer: str) -> None:
        other = self.weak if used_model == self.strong else self.strong
        try:
            result = await self.call_model("strong" if other == self.strong else "weak", {**payload, "model": other,
                                                                                           "stream": False})
            self._spend(_usd(result.get("usage"), self.prices.get(other, (0.0, 0.0))))
            other_text = _text(result)
            if other_text is None:
                self.metrics.record_judge_failure("other_model_empty")
                return
        except Exception as exc:
            log.warning("learning: the other model (%s) failed for a label: %s", other, type(exc).__name__)
            self.metrics.record_judge_failure("other_model_error")
            return
        strong_text, weak_text = (answer, other_text) if used_model == self.strong else (other_text, answer)
        verdicts = []
        j = self.args.judge
        for messages in judge_protocol.both_orders(prompt, strong_text, weak_text):
            try:
                reply = await self._judge_client().chat.completions.create(
                    model=j.model, messages=messages, max_tokens=j.max_tokens, temperature=0)
                self.metrics.record_judge_call()
                self._spend(_usd(getattr(reply, "usage", None), (j.price.input_usd_per_1m_tokens,
                                                                  j.price.output_usd_per_1m_tokens)))
                content = reply.choices[0].message.content if reply.choices else None
                verdicts.append(judge_protocol.parse(content))
            except judge_protocol.JudgeOutputError as exc:
                log.warning("learning: judge output unusable: %s", exc)
                self.metrics.record_judge_failure("garbage")
                return
            except Exception as exc:
                log.warning("learning: judge call failed: %s", type(exc).__name__)
                self.metrics.record_judge_call()
                self.metrics.record_judge_failure("error")
                return
        verdict = judge_protocol.combine(*verdicts)
        rec = judge_record(prompt, self.strong, self.weak, verdict, request_id=request_id, router=router,
                           p_strong=p_strong, routed_model=used_model, now=time.time())
        await self._write(rec)

    async def _write(self, rec: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.writer.append, rec)
        except Exception as exc:
            log.warning("learning: writing a label to %s failed: %s", self.args.store, exc)
            self.metrics.record_label_skip("store_error")
            return
        self.metrics.record_label(rec["kind"])

    def _spend(self, usd: float) -> None:
        self.spend.add(usd)
        self.metrics.record_label_spend(usd)

    # --- feedback --------------------------------------------------------------------------------

    async def feedback(self, request_id: str, score: float) -> dict[str, Any]:
        if self.book is None:
            raise NotFoundError("feedback is off on this server (learning.feedback: false)", code="feedback_disabled")
        entry = self.book.take(request_id)
        rec = feedback_record(entry.prompt, self.strong, self.weak, score, entry.by_strong, request_id=request_id,
                              router=entry.router, p_strong=entry.p_strong, routed_model=entry.routed_model,
                              now=time.time())
        try:
            await asyncio.to_thread(self.writer.append, rec)
        except Exception as exc:
            entry.used = False
            log.warning("learning: writing feedback to %s failed: %s", self.args.store, exc)
            raise
        self.metrics.record_label("feedback")
        return {"object": "feedback", "request_id": request_id, "score": score, "recorded": True}

    # --- shadow ----------------------------------------------------------------------------------

    async def _shadow(self, alias: str, candidate: Any, threshold: float, request_id: str, prompt: str,
                      route: str) -> None:
        try:
            verdict = await candidate.route.remote(prompt, threshold)
        except Exception as exc:
            log.warning("shadow router for %r failed: %s", alias, type(exc).__name__)
            return
        would = "strong" if verdict.strong else "weak"
        self.metrics.record_shadow(alias, would, agree=(would == route))
        log.info("shadow %s: request %s served %s, candidate p_strong=%.4f would route %s", alias, request_id,
                 route, verdict.p_strong, would)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait for the collections in flight (tests, shutdown)."""
        if self.pending:
            await asyncio.wait(list(self.pending), timeout=timeout_s)
