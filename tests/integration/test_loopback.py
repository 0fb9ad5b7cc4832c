"""bench.loopback and the fake OpenAI-compatible server built on it: real HTTP on 127.0.0.1 (no Ray)."""

import httpx
import pytest
from fastapi import FastAPI

from bench.fake_openai import FakeOpenAI
from bench.loopback import LoopbackServer, free_port


def test_fake_openai_answers_a_chat_completion_and_counts_it():
    with FakeOpenAI(name="fake-strong", completion_tokens=7, reply="hi there") as srv:
        r = httpx.post(srv.base_url + "/chat/completions", timeout=10,
                       json={"model": "fake-strong", "messages": [{"role": "user", "content": "x" * 40}]})
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "hi there"
    assert body["usage"]["completion_tokens"] == 7 and body["usage"]["prompt_tokens"] >= 10
    assert srv.calls == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # uvicorn exits its thread
def test_stop_frees_the_port_and_a_taken_port_fails_to_start_with_its_name():
    app = FastAPI()
    first = LoopbackServer("first", free_port())
    first.start(app, timeout_s=10)
    second = LoopbackServer("second", first.port)
    with pytest.raises(TimeoutError, match="second on port"):
        second.start(app, timeout_s=3)
    first.stop()
    again = LoopbackServer("again", first.port)
    again.start(app, timeout_s=10)
    again.stop()


def test_fake_openai_streams_like_openai_with_the_official_client():
    import openai

    with FakeOpenAI(name="fake-strong", completion_tokens=3, reply="one two three") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        chunks = list(client.chat.completions.create(model="fake-strong", stream=True,
                                                     stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "count"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 3 and not chunks[-1].choices
