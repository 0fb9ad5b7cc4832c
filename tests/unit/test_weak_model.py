"""The weak-model replica through its injected engine: a fake with vLLM's AsyncLLM call shape
(``get_tokenizer``, ``generate`` as an async generator of request outputs, ``model_config``), so the
replica's own work is tested without a model: rendering, token budget, sampling parameters,
OpenAI-shaped answers and chunks, and its errors. (The real engine: tests/integration.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from vllm.sampling_params import RequestOutputKind

from deployments.errors import BackendUnavailableError, ContextLengthError, InvalidRequestError
from deployments.weak_model import WeakModel

USER = [{"role": "user", "content": "say hello to me"}]


class FakeTokenizer:
    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        assert add_generation_prompt and tokenize
        words = " ".join(m["content"] for m in messages).split()
        return list(range(len(words) + 2))  # + the template's tokens


class FakeEngine:
    """Answers ``pieces`` (one per step in delta mode, joined in final-only mode) on ``n`` choices."""

    def __init__(self, pieces=("Hel", "lo"), error: Exception | None = None, max_model_len: int = 32) -> None:
        self.pieces, self.error = pieces, error
        self.model_config = SimpleNamespace(max_model_len=max_model_len)
        self.calls: list = []

    def get_tokenizer(self):
        return FakeTokenizer()

    async def generate(self, prompt, params, request_id):
        self.calls.append((prompt, params, request_id))
        if self.error is not None:
            raise self.error
        if params.output_kind == RequestOutputKind.DELTA:
            for i, piece in enumerate(self.pieces):
                last = i == len(self.pieces) - 1
                yield SimpleNamespace(outputs=[
                    SimpleNamespace(index=c, text=piece, token_ids=[i], finish_reason="stop" if last else None)
                    for c in range(params.n)])
        else:
            yield SimpleNamespace(outputs=[
                SimpleNamespace(index=c, text="".join(self.pieces), token_ids=list(range(len(self.pieces))),
                                finish_reason="length")
                for c in reversed(range(params.n))])  # out of order: the replica sorts them


def weak(engine: FakeEngine, **kwargs) -> WeakModel:
    seen = {}

    def factory(model, engine_kwargs):
        seen.update(model=model, engine_kwargs=engine_kwargs)
        return engine

    replica = WeakModel("models/some-model", "weak-some-model", {"max_model_len": 32}, engine_factory=factory,
                        kv_cache_space_gib=None, **kwargs)
    assert seen == {"model": "models/some-model", "engine_kwargs": {"max_model_len": 32}}
    return replica


def test_chat_answers_openai_shaped_with_usage_and_the_served_name():
    engine = FakeEngine()
    out = asyncio.run(weak(engine).chat({"messages": USER, "n": 2, "temperature": 0.3, "stop": "END", "seed": 7}))
    assert out["object"] == "chat.completion" and out["model"] == "weak-some-model"
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
    prompt, params, _ = engine.calls[0]
    assert prompt == {"prompt_token_ids": list(range(6))}
    assert (params.n, params.temperature, params.seed, params.stop) == (2, 0.3, 7, ["END"])
    assert params.output_kind == RequestOutputKind.FINAL_ONLY


def test_max_tokens_default_and_capped_by_the_room_left_in_the_context():
    engine = FakeEngine(max_model_len=32)
    replica = weak(engine, max_tokens_default=5)
    asyncio.run(replica.chat({"messages": USER}))
    asyncio.run(replica.chat({"messages": USER, "max_tokens": 1000}))
    assert [c[1].max_tokens for c in engine.calls] == [5, 32 - 6]


def test_a_prompt_longer_than_the_context_is_a_400_before_the_engine_runs():
    engine = FakeEngine(max_model_len=8)
    with pytest.raises(ContextLengthError, match="context is 8"):
        asyncio.run(weak(engine).chat({"messages": [{"role": "user", "content": "word " * 10}]}))
    assert engine.calls == []


@pytest.mark.parametrize("error, expected", [(ValueError("bad stop"), InvalidRequestError),
                                             (RuntimeError("engine died"), BackendUnavailableError)])
def test_engine_errors_map_to_a_client_or_a_backend_error(error, expected):
    with pytest.raises(expected) as ei:
        asyncio.run(weak(FakeEngine(error=error)).chat({"messages": USER}))
    assert type(ei.value) is expected


def test_stream_sends_the_role_then_deltas_then_usage_when_asked():
    engine = FakeEngine(pieces=("Hel", "lo", ""))

    async def collect():
        return [c async for c in weak(engine).chat_stream({"messages": USER, "include_usage": True})]

    chunks = asyncio.run(collect())
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["Hel", "lo", None]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert engine.calls[0][1].output_kind == RequestOutputKind.DELTA


def test_stream_failure_mid_way_is_a_backend_error():
    async def collect():
        return [c async for c in weak(FakeEngine(error=RuntimeError("gone"))).chat_stream({"messages": USER})]

    with pytest.raises(BackendUnavailableError, match="mid-stream"):
        asyncio.run(collect())


def test_health_follows_the_engine():
    engine = FakeEngine()
    replica = weak(engine)
    asyncio.run(replica.check_health())
    engine.errored = True
    with pytest.raises(RuntimeError, match="errored"):
        asyncio.run(replica.check_health())
