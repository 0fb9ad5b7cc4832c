"""The weak-model replica through its injected serving layer: a fake with the call shape of vLLM's
``OpenAIServingChat`` (``create_chat_completion(request, raw_request)`` answering a response, an
``ErrorResponse``, or an async generator of SSE strings), so the replica's own work is tested without
a model: the body validated by vLLM's request model, vLLM's answers and errors turned into this app's
(400 stays 400, in vLLM's words). The real engine: tests/integration/test_openai_parity.py."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from vllm.exceptions import VLLMValidationError

from deployments.errors import BackendUnavailableError, ContextLengthError, InvalidRequestError, classify
from deployments.weak_model import WeakModel, WeakServing, frontend_options

USER = [{"role": "user", "content": "say hello to me"}]
NAME = "weak-some-model"


class FakeChat:
    """Answers ``answer`` (an object, or a list of SSE strings when streaming), or raises ``error``."""

    def __init__(self, answer=None, error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.requests: list = []

    async def create_chat_completion(self, request, raw_request):
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        if isinstance(self.answer, list):
            async def events():
                for e in self.answer:
                    yield e
            return events()
        return self.answer


def weak(chat: FakeChat, **kwargs) -> WeakModel:
    seen = {}

    async def factory(model, served_model_name, engine_kwargs, frontend):
        seen.update(model=model, name=served_model_name, engine_kwargs=engine_kwargs, frontend=frontend)
        return WeakServing(chat=chat, engine=SimpleNamespace(errored=False), max_model_len=32)

    replica = WeakModel.__new__(WeakModel)
    asyncio.run(replica.__init__("models/some-model", NAME, {"max_model_len": 32}, serving_factory=factory,
                                 kv_cache_space_gib=None, **kwargs))
    assert seen["engine_kwargs"] == {"max_model_len": 32} and seen["name"] == NAME
    replica.seen = seen
    return replica


def response(**fields):
    return SimpleNamespace(choices=[], model_dump=lambda exclude_none: {"object": "chat.completion", **fields})


def test_the_body_reaches_vllms_request_model_unchanged():
    chat = FakeChat(response(model=NAME))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = {"model": NAME, "messages": USER, "tools": tools, "tool_choice": {"type": "function", "function": {"name": "f"}},
            "logprobs": True, "top_logprobs": 2, "seed": 3, "n": 2, "top_k": 5,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}
    out = asyncio.run(weak(chat).chat(body))
    assert out == {"object": "chat.completion", "model": NAME}
    req = chat.requests[0]
    assert (req.model, req.logprobs, req.top_logprobs, req.seed, req.n, req.top_k, req.stream) == (
        NAME, True, 2, 3, 2, 5, False)
    assert req.tools[0].function.name == "f" and req.response_format.type == "json_schema"


def test_the_tool_call_parser_is_vllms_server_option():
    assert frontend_options(None) == {}
    assert frontend_options("hermes", "parameter") == {"enable_auto_tool_choice": True, "tool_call_parser": "hermes",
                                                       "tool_strict_level": "parameter"}
    assert weak(FakeChat(), tool_call_parser="hermes").seen["frontend"]["tool_call_parser"] == "hermes"


@pytest.mark.parametrize("answer, error, cls, param, words", [
    (SimpleNamespace(error=SimpleNamespace(message="Grammar error: Invalid type: banana", code=400, param=None)),
     None, InvalidRequestError, None, "Grammar error: Invalid type: banana"),
    (None, ValueError("weak-some-model is not a multimodal model"), InvalidRequestError, None, "not a multimodal"),
    (None, VLLMValidationError("This model's maximum context length is 32 tokens.", parameter="input_tokens"),
     ContextLengthError, "messages", "maximum context length"),
    (SimpleNamespace(error=SimpleNamespace(message="engine dead", code=500, param=None)), None,
     BackendUnavailableError, None, "engine dead"),
])
def test_vllms_errors_reach_the_client_in_its_words(answer, error, cls, param, words):
    with pytest.raises(cls) as ei:
        asyncio.run(weak(FakeChat(answer, error)).chat({"model": NAME, "messages": USER}))
    assert words in ei.value.message and ei.value.param == param
    assert classify(ei.value)[0] == (503 if cls is BackendUnavailableError else 400)


@pytest.mark.parametrize("body, expected", [({}, 7), ({"max_tokens": 3}, 3), ({"max_completion_tokens": 20}, None)])
def test_max_tokens_default_applies_only_when_the_request_gives_none(body, expected):
    chat = FakeChat(response())
    asyncio.run(weak(chat, max_tokens_default=7).chat({"model": NAME, "messages": USER, **body}))
    assert chat.requests[0].max_tokens == expected


def test_a_field_vllm_cannot_take_is_a_400_naming_it():
    with pytest.raises(InvalidRequestError) as ei:
        asyncio.run(weak(FakeChat(response())).chat({"model": NAME, "messages": USER, "n": "many"}))
    assert ei.value.param == "n"


def _sse(obj) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def test_stream_yields_vllms_chunks_as_dicts():
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
              {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]},
              {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}]
    chat = FakeChat([_sse(c) for c in chunks] + ["data: [DONE]\n\n"])
    replica = weak(chat)

    async def run():
        return [c async for c in replica.chat_stream({"model": NAME, "messages": USER, "stream": True,
                                                         "stream_options": {"include_usage": True}})]

    assert asyncio.run(run()) == chunks
    assert chat.requests[0].stream is True and chat.requests[0].stream_options.include_usage is True


def test_an_error_event_mid_stream_raises():
    replica = weak(FakeChat([_sse({"choices": []}), _sse({"error": {"message": "boom", "code": 500}})]))

    async def run():
        return [c async for c in replica.chat_stream({"model": NAME, "messages": USER})]

    with pytest.raises(BackendUnavailableError, match="boom"):
        asyncio.run(run())


def test_info_and_health():
    replica = weak(FakeChat(), tool_call_parser="hermes")
    assert replica.info()["max_model_len"] == 32 and replica.info()["tool_call_parser"] == "hermes"
    asyncio.run(replica.check_health())
    replica.engine.errored = True
    with pytest.raises(RuntimeError):
        asyncio.run(replica.check_health())


def test_a_missing_local_model_is_a_start_up_error_naming_the_builder(tmp_path):
    """The app never builds a model: a missing directory fails fast and says how to build it."""
    async def factory(*_a):  # never reached
        raise AssertionError("the engine was started for a missing model")

    missing = str(tmp_path / "tiny-llama")
    with pytest.raises(FileNotFoundError, match=r"rayroute build-weak-model --out .*tiny-llama"):
        asyncio.run(WeakModel.__new__(WeakModel).__init__(missing, NAME, {}, serving_factory=factory,
                                                            kv_cache_space_gib=None))
