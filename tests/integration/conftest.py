"""Clients shared by the integration modules. Each module boots its own app (fixture ``app_url``)
and sets its own ingress key (module constant ``INGRESS_KEY``); these fixtures talk to that app.
``strong_server``: the fake OpenAI server with the module's ``STRONG_KEY`` (a module may define its own)."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def ingress_key(request) -> str:
    return request.module.INGRESS_KEY


@pytest.fixture(scope="module")
def client(app_url, ingress_key):
    """The official openai client, no retries (a test must see every error)."""
    import openai

    return openai.OpenAI(base_url=app_url + "/v1", api_key=ingress_key, timeout=60, max_retries=0)


@pytest.fixture(scope="module")
def http(app_url, ingress_key):
    with httpx.Client(base_url=app_url, timeout=60, headers={"authorization": f"Bearer {ingress_key}"}) as c:
        yield c


@pytest.fixture(scope="module")
def strong_server(request):
    from tests.integration.openai_server import OpenAIServer

    srv = OpenAIServer(api_key=request.module.STRONG_KEY).start()
    try:
        yield srv
    finally:
        srv.stop()
