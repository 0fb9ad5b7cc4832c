"""A free loopback port, and an ASGI app served on 127.0.0.1 by uvicorn in a daemon thread: the one
copy behind every local fake server of the benchmarks and the tests (``bench.fake_openai``,
``tests/integration/openai_server.py``) and the ports the benchmarks' apps listen on.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackServer:
    """``start(app)`` serves ``app`` on ``127.0.0.1:port`` until ``stop()``; start raises
    TimeoutError naming the server when uvicorn is not up within ``timeout_s``."""

    def __init__(self, name: str, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any, timeout_s: float = 30.0) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise TimeoutError(f"{self.name} on port {self.port} did not start in {timeout_s:g}s")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._server = self._thread = None
