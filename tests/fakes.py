"""Shared fakes and synthetic data for tests, written once.

- ``HashEmbedder``: a deterministic bag-of-words hashing embedder (the ``Embedder`` protocol) so
  unit tests need no model load; texts sharing words get similar vectors.
- ``synthetic_preferences``: canonical preference rows with a *known learnable* relation between
  prompt and winner: "hard" prompts (math / code / proofs) are won by the strong models, "easy" ones
  (greetings / small talk) are ties or won by the weak models.
- ``synthetic_benchmark``: per-question strong / weak scores with the same relation, for APGR.
- ``CHAT_FIELDS``: every field of OpenAI's chat request that the router passes through (issue 17),
  as a client sends them; ``WEATHER_TOOL`` its one tool.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from routers.embeddings import HashingEmbedder

HARD_WORDS = ["integral", "prove", "theorem", "derivative", "algorithm", "compile", "recursion",
              "matrix", "eigenvalue", "optimize", "probability", "complexity", "lemma", "polynomial"]
EASY_WORDS = ["hello", "thanks", "weather", "favorite", "color", "movie", "hobby", "joke",
              "breakfast", "weekend", "song", "pet", "holiday", "greeting"]
FILLER = ["please", "tell", "me", "about", "the", "a", "some", "quick", "question", "what", "is",
          "your", "view", "on", "this", "and", "explain", "briefly"]

STRONG_MODELS = ["big-model-1", "big-model-2"]
WEAK_MODELS = ["small-model-1", "small-model-2"]


class HashEmbedder(HashingEmbedder):
    """The library's bag-of-words hashing embedder (deterministic, instant), named ``hash-<dim>``."""


def make_prompt(rng: np.random.Generator, hard: bool) -> str:
    topic = rng.choice(HARD_WORDS if hard else EASY_WORDS, size=2, replace=False)
    filler = rng.choice(FILLER, size=6)
    words = list(filler[:3]) + [topic[0]] + list(filler[3:]) + [topic[1]]
    return " ".join(words).capitalize() + "?"


def synthetic_preferences(n_prompts: int = 400, seed: int = 0, p_signal: float = 0.85) -> pd.DataFrame:
    """Canonical preference frame. Each prompt gets one strong-vs-weak battle (either orientation)
    plus one strong-vs-strong and one weak-vs-weak battle (noise, 50/50)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_prompts):
        hard = bool(rng.random() < 0.5)
        prompt = make_prompt(rng, hard)
        s, w = rng.choice(STRONG_MODELS), rng.choice(WEAK_MODELS)
        u = rng.random()
        if hard:
            outcome = "s" if u < p_signal else ("tie" if u < p_signal + 0.05 else "w")
        else:
            outcome = "w" if u < 0.55 else ("tie" if u < 0.9 else "s")
        p_strong = {"s": 1.0, "w": 0.0, "tie": 0.5}[outcome]
        if rng.random() < 0.5:
            rows.append((prompt, s, w, 1.0 - p_strong, outcome == "tie"))
        else:
            rows.append((prompt, w, s, p_strong, outcome == "tie"))
        rows.append((prompt, STRONG_MODELS[0], STRONG_MODELS[1], float(rng.integers(0, 2)), False))
        rows.append((prompt, WEAK_MODELS[0], WEAK_MODELS[1], float(rng.integers(0, 2)), False))
    df = pd.DataFrame(rows, columns=["prompt", "model_a", "model_b", "p_b_wins", "tie"])
    df.loc[df["tie"], "p_b_wins"] = 0.5
    df["weight"] = 1.0
    df["source"] = "synthetic"
    return df


def synthetic_benchmark(n: int = 300, seed: int = 1) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(prompts, strong_scores, weak_scores) in {0, 1}: the strong model is right on most prompts;
    the weak model fails mostly on hard ones, so routing hard prompts to strong recovers the gap."""
    rng = np.random.default_rng(seed)
    prompts, s, w = [], [], []
    for _ in range(n):
        hard = bool(rng.random() < 0.5)
        prompts.append(make_prompt(rng, hard))
        s.append(float(rng.random() < 0.9))
        w.append(float(rng.random() < (0.3 if hard else 0.85)))
    return prompts, np.array(s), np.array(w)


# --- the OpenAI chat request, every pass-through field ------------------------------------------------

#: bounded argument schema: even a random model finishes it within a few tokens
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
               "required": ["city"], "additionalProperties": False}
# strict: true asks for arguments that follow the schema (OpenAI's structured outputs for tools)
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                                 "parameters": CITY_SCHEMA, "strict": True}}
CHAT_FIELDS = {
    "tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False, "logprobs": True, "top_logprobs": 2, "n": 1, "seed": 7, "stop": ["zz"],
    "max_completion_tokens": 9, "user": "user-1", "metadata": {"team": "a"},
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    "messages": [
        {"role": "system", "content": "s"}, {"role": "developer", "content": "d"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                                     {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "user", "content": "and tomorrow?"}],
}


class FakeJudgeClient:
    """An AsyncOpenAI stand-in for the label collector's judge: ``chat.completions.create`` returns
    ``replies`` in turn (a string is the reply's content, an exception is raised), recording each
    call's messages."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls: list[list[dict]] = []
        fake = self

        class _Completions:
            async def create(self, *, model, messages, **kwargs):
                from types import SimpleNamespace

                fake.calls.append(messages)
                reply = fake.replies.pop(0) if fake.replies else "[[C]]"
                if isinstance(reply, BaseException):
                    raise reply
                msg = SimpleNamespace(content=reply)
                return SimpleNamespace(choices=[SimpleNamespace(message=msg)],
                                       usage=SimpleNamespace(prompt_tokens=1000, completion_tokens=100))

        from types import SimpleNamespace

        self.chat = SimpleNamespace(completions=_Completions())


# --- N-way routing: four models, a kNN checkpoint whose choice is unambiguous, fake backends ---------

#: served names, cheapest first
NWAY_MODELS = ["m-cheap", "m-small", "m-mid", "m-big"]
#: $ per 1M tokens, prompt and completion alike, so relative costs are 0.005, 0.05, 0.25 and 1
NWAY_PRICES = [0.1, 1.0, 5.0, 20.0]
#: outcomes on hard prompts (easy ones: 1.0 for every model). On a hard prompt the rule picks
#: m-big at λ = 0, m-mid at λ = 0.2 (0.9 − 0.05 > 1 − 0.2) and m-cheap at λ = 10.
NWAY_HARD_QUALITY = [0.1, 0.3, 0.9, 1.0]
NWAY_HARD_PROMPT = "prove the integral theorem"
NWAY_EASY_PROMPT = "hello weather joke"
NWAY_EXPECTED = {0.0: "m-big", 0.2: "m-mid", 10.0: "m-cheap"}


def nway_training(n: int = 80, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(prompts, outcomes (n, 4)): hard prompts (three hard words) with ``NWAY_HARD_QUALITY``,
    easy ones (three easy words) where every model is right. No filler words, so a hard prompt's
    nearest neighbours are hard prompts."""
    rng = np.random.default_rng(seed)
    prompts, rows = [], []
    for i in range(n):
        hard = i % 2 == 0
        prompts.append(" ".join(rng.choice(HARD_WORDS if hard else EASY_WORDS, size=3, replace=False)))
        rows.append(NWAY_HARD_QUALITY if hard else [1.0] * len(NWAY_MODELS))
    return prompts, np.array(rows, dtype=np.float64)


def nway_knn_checkpoint(path, k: int = 5):
    """A kNN quality router over ``NWAY_MODELS`` fitted on ``nway_training`` with the hash-64
    embedder, saved to ``path`` (a replica rebuilds the embedder from its name)."""
    from routers.nway.knn import KNNQualityRouter

    prompts, outcomes = nway_training()
    return KNNQualityRouter.fit(prompts, outcomes, NWAY_MODELS, HashEmbedder(64), k=k).save(path)


def chat_completion(model: str, text: str, prompt_tokens: int = 3, completion_tokens: int = 2) -> dict:
    return {"id": "c", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def chat_chunk(model: str, text: str) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": {"content": text}}]}


class FakeModel:
    """A model replica's methods (``chat``, ``chat_stream``, ``info``) answering "<name> answer";
    ``error`` (an exception) makes every call raise it. ``calls`` counts calls."""

    def __init__(self, name: str, error: BaseException | None = None) -> None:
        self.name, self.error, self.calls = name, error, 0

    def info(self) -> dict:
        return {"configured": True, "api_key_env": "SOME_KEY"}

    async def chat(self, req: dict) -> dict:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return chat_completion(self.name, f"{self.name} answer")

    async def chat_stream(self, req: dict):
        self.calls += 1
        if self.error is not None:
            raise self.error
        for t in (self.name, " answer"):
            yield chat_chunk(self.name, t)


class FakeHandle:
    """Serve's handle call shape over a plain object: ``h.method.remote(...)`` is awaitable and
    ``h.options(stream=True).method.remote(...)`` async-iterable."""

    def __init__(self, obj, stream: bool = False) -> None:
        self._obj, self._stream = obj, stream

    def options(self, stream: bool = False) -> "FakeHandle":
        return FakeHandle(self._obj, stream)

    def __getattr__(self, name):
        method = getattr(self._obj, name)
        stream = self._stream

        class _Method:
            @staticmethod
            def remote(*a, **k):
                return method(*a, **k) if stream else _Awaitable(method(*a, **k))

        return _Method()


class _Awaitable:
    def __init__(self, value) -> None:
        self._value = value

    def __await__(self):
        import asyncio

        if asyncio.iscoroutine(self._value):
            return self._value.__await__()

        async def done():
            return self._value

        return done().__await__()
