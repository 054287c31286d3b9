"""Run an ASGI app with uvicorn in a background thread on a loopback port."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class ThreadedServer:
    """A uvicorn server in a daemon thread; port 0 picks a free port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        options: dict[str, Any] = {"log_config": None, "log_level": None} | config
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")
        self.host = host

    @property
    def port(self) -> int:
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ThreadedServer:
        """Start serving; returns once the socket is listening."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
