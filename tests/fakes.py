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
