"""A real `kb serve` app on loopback for tests: uvicorn in a thread, over the session's models."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app, timeout: float = 60, **config) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 until the block ends; yields the base URL.
    `config`: more uvicorn.Config arguments (log_config=None leaves logging to the test)."""
    import uvicorn

    port = config.pop("port", None) or free_port()
    options = {"log_level": "warning", "lifespan": "on", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_until(condition, timeout: float = 30, interval: float = 0.05, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(interval)


def wait_ready(url: str, timeout: float = 120, headers: dict | None = None) -> dict:
    """Poll /health until it says ready; returns its body."""
    last: dict = {}

    def ready() -> bool:
        nonlocal last
        try:
            response = httpx.get(f"{url}/health", timeout=5, headers=headers)
        except httpx.HTTPError:
            return False
        last = response.json()
        return response.status_code == 200

    wait_until(ready, timeout, 0.2, "/health to report ready")
    return last
