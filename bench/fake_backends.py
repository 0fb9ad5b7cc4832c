"""Local OpenAI-compatible fakes for the learning demonstration and its tests: a strong and a weak
model that answer each benchmark question right or wrong as the real model did (the golden
outcome), and a judge that speaks the real pairwise judge protocol (``routers.learning.judge``).

- ``GoldenModelServer(outcomes)``: ``outcomes`` maps a question (the last user message) to whether
  this model answered it correctly. The answer is a canned text tagged ``[correct]`` or
  ``[wrong]``; a question it does not know gets ``[unknown]`` (judged a tie).
- ``JudgeServer(noise)``: reads the question and the two answers out of the judge prompt, prefers
  the ``[correct]`` one (a tie when both or neither are), and flips its verdict with probability
  ``noise`` (A <-> B; a tie becomes A or B at random): a judge that errs. ``garbage_rate`` answers
  without a verdict, ``fail_rate`` with HTTP 500 (failures the collector must survive).

Both are ``bench.fake_openai.FakeChatServer``s: uvicorn in a thread on 127.0.0.1, usage ≈ 4
characters a token, calls counted.
"""

from __future__ import annotations

import random
import re
from typing import Any

from bench.fake_openai import FakeChatServer, completion, last_user, tokens
from routers.learning.judge import TEMPLATE

CORRECT, WRONG, UNKNOWN = "[correct]", "[wrong]", "[unknown]"


class GoldenModelServer(FakeChatServer):
    """A model that is right exactly where the real one was (module docstring)."""

    def __init__(self, name: str, outcomes: dict[str, bool], port: int | None = None) -> None:
        super().__init__(name, port)
        self.outcomes = outcomes

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        q = last_user(body.get("messages"))
        ok = self.outcomes.get(q)
        tag = UNKNOWN if ok is None else (CORRECT if ok else WRONG)
        return 200, completion(body.get("model", self.name), f"{tag} {self.name} answers.", tokens(q))


_ANSWER = {k: re.compile(re.escape(f"[The Start of Assistant {k}'s Answer]\n") + r"(.*?)"
                         + re.escape(f"\n[The End of Assistant {k}'s Answer]"), re.S) for k in "AB"}
assert "[The Start of Assistant A's Answer]" in TEMPLATE


class JudgeServer(FakeChatServer):
    """The pairwise judge, right by the golden outcomes, wrong with probability ``noise``."""

    def __init__(self, noise: float = 0.0, seed: int = 0, garbage_rate: float = 0.0, fail_rate: float = 0.0,
                 port: int | None = None) -> None:
        super().__init__("judge", port)
        self.noise = noise
        self.garbage_rate = garbage_rate
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)

    def verdict(self, judge_prompt: str) -> str:
        a, b = (_ANSWER[k].search(judge_prompt) for k in "AB")
        good_a = a is not None and a.group(1).startswith(CORRECT)
        good_b = b is not None and b.group(1).startswith(CORRECT)
        v = "C" if good_a == good_b else ("A" if good_a else "B")
        if self.rng.random() < self.noise:
            v = {"A": "B", "B": "A"}.get(v) or self.rng.choice("AB")
        return v

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = self.rng.random()
        if r < self.fail_rate:
            return 500, {"error": {"message": "judge overloaded", "type": "server_error", "param": None, "code": None}}
        prompt = last_user(body.get("messages"))
        if r < self.fail_rate + self.garbage_rate:
            text = "Both answers have merit; I cannot decide."
        else:
            text = f"Comparing the two answers: one is right. [[{self.verdict(prompt)}]]"
        return 200, completion(body.get("model", "judge"), text, tokens(prompt))
