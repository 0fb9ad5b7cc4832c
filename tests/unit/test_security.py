"""Security of the serving layer without Ray: constant-time key checks, no secrets in errors or logs,
no prompts in logs. (The same is checked end to end, on Ray Serve's own log files, by
tests/integration/test_reliability.py::test_keys_and_prompts_never_in_logs_errors_or_responses.)"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import re

import httpx
import openai
import pytest

from deployments import http as http_mod
from deployments.chat import ServedModels
from deployments.config import IngressArgs
from deployments.errors import AuthenticationError, UpstreamError, UpstreamUnavailableError, classify
from deployments.http import ApiKeyAuth, load_api_keys
from deployments.ingress import Ingress
from deployments.metrics import ServingMetrics
from deployments.strong_model import StrongModel

KEY_A = "rr-key-aaaaaaaaaaaaaaaaaaaa"
KEY_B = "rr-key-bbbbbbbbbbbbbbbbbbbb"
STRONG_KEY = "sk-live-0123456789abcdef0123456789"
MARKER = "marker-prompt-quokka-42"


class _Handle:
    def __getattr__(self, name):  # never called in these tests
        raise AssertionError(f"unexpected backend call {name}")


def _ingress(monkeypatch, keys: str) -> Ingress:
    monkeypatch.setenv("RR_SEC_KEYS", keys)
    return Ingress({"random": _Handle()}, _Handle(), _Handle(),
                   models=ServedModels(strong="strong", weak="weak", default_router="random"),
                   args=IngressArgs(api_keys_env="RR_SEC_KEYS"), metrics=ServingMetrics(export=False))


def test_api_keys_compared_with_hmac_compare_digest_no_early_exit(monkeypatch):
    src = inspect.getsource(ApiKeyAuth.check)
    assert "hmac.compare_digest" in src
    # no short-circuiting comparison of the presented token with a key
    assert not re.search(r"token\s*(==|!=|in\b)|(==|!=)\s*token|key\s*==|==\s*key|startswith\(", src), src
    ing = _ingress(monkeypatch, f"{KEY_A},{KEY_B}")
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(http_mod.hmac, "compare_digest", spy)
    ing.auth.check(f"Bearer {KEY_A}")  # matches the first key: the second is still compared
    assert len(calls) == 2 and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)
    calls.clear()
    with pytest.raises(AuthenticationError):
        ing.auth.check("Bearer wrong")
    assert len(calls) == 2


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic " + KEY_A, KEY_A, "Bearer " + KEY_A + "x",
                                    "Bearer " + KEY_A[:-1]])
def test_wrong_or_missing_key_is_401_without_any_key_in_it(monkeypatch, header):
    ing = _ingress(monkeypatch, f"{KEY_A},{KEY_B}")
    with pytest.raises(AuthenticationError) as ei:
        ing.auth.check(header)
    status, body = classify(ei.value)
    text = str(body)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert KEY_A not in text and KEY_B not in text and KEY_A[:-1] not in text


def test_keys_loaded_and_logged_as_a_count_only(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    ing = _ingress(monkeypatch, f" {KEY_A} , ,{KEY_B}")
    assert load_api_keys("RR_SEC_KEYS") == [KEY_A.encode(), KEY_B.encode()]
    ing.auth.check(f"Bearer {KEY_B}")
    assert "2 configured" in caplog.text
    assert KEY_A not in caplog.text and KEY_B not in caplog.text


def _strong(monkeypatch, exc: Exception) -> StrongModel:
    monkeypatch.setenv("RR_SEC_STRONG", STRONG_KEY)

    class Completions:
        async def create(self, **kwargs):
            raise exc

    class Client:
        def __init__(self):
            self.chat = type("Chat", (), {"completions": Completions()})()

    return StrongModel("http://127.0.0.1:9/v1", "gpt-x", "RR_SEC_STRONG", max_retries=1,
                       client_factory=lambda *a: Client(), sleep=lambda s: asyncio.sleep(0), cooldown_failures=2)


def _status_error(cls, status: int, message: str):
    req = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    resp = httpx.Response(status, request=req, json={"error": {"message": message}})
    return cls(message, response=resp, body={"error": {"message": message}})


@pytest.mark.parametrize("exc", [
    # OpenAI echoes (part of) a rejected key in its 401 message
    _status_error(openai.AuthenticationError, 401, f"Incorrect API key provided: {STRONG_KEY}"),
    _status_error(openai.PermissionDeniedError, 403, f"key {STRONG_KEY} may not use this model"),
    _status_error(openai.InternalServerError, 500, f"boom {STRONG_KEY}"),
    _status_error(openai.RateLimitError, 429, f"rate limited for key {STRONG_KEY}"),
    openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1")),
])
def test_strong_key_never_in_errors_or_logs(monkeypatch, caplog, exc):
    caplog.set_level(logging.DEBUG)
    strong = _strong(monkeypatch, exc)
    prompt = [{"role": "user", "content": MARKER}]
    for _ in range(3):  # also trips the cooldown (logged)
        with pytest.raises(UpstreamError) as ei:  # the provider's error, classified, or the cooldown's
            asyncio.run(strong.chat({"messages": prompt}))
        status, body = classify(ei.value)
        assert STRONG_KEY not in str(body) and STRONG_KEY[:12] not in str(body), body
        assert MARKER not in str(body)
    assert strong.info()["cooldowns"] >= 1
    assert STRONG_KEY not in str(strong.info())
    assert "cooling down" in caplog.text or "failed" in caplog.text
    assert STRONG_KEY not in caplog.text and MARKER not in caplog.text


def test_no_key_message_names_the_variable_not_a_value(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("RR_SEC_NONE", raising=False)
    strong = StrongModel("http://127.0.0.1:9/v1", "gpt-x", "RR_SEC_NONE")
    with pytest.raises(UpstreamUnavailableError) as ei:
        asyncio.run(strong.chat({"messages": [{"role": "user", "content": MARKER}]}))
    status, body = classify(ei.value)
    assert status == 502 and "$RR_SEC_NONE" in body["error"]["message"]
    assert "RR_SEC_NONE" in caplog.text and MARKER not in caplog.text
