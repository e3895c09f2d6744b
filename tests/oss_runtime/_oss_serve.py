"""`oss-runtime serve`'s real app on a real uvicorn, in a thread, on 127.0.0.1 (any free port)."""

from __future__ import annotations

import threading
import time
from typing import Any

from oss_runtime.serve.runner import bind, make_server
from oss_runtime.serve.state import ServerState, ServeSettings


class RunningServer:
    """Starts at once; ``stop()`` ends it within bounded waits (the thread must be gone)."""

    def __init__(self, runtime: Any = None, **settings: Any) -> None:
        self.state = ServerState(ServeSettings(**settings))
        if runtime is not None:
            self.state.attach(runtime)
        sock = bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = make_server(self.state)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       name="test-uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start within 20 s")
            time.sleep(0.02)
        self.sock = sock
        self.clients: list[Any] = []

    @property
    def engine(self) -> Any:
        return self.state.engine

    def client(self, api_key: str = "none", **kw: Any) -> Any:
        import openai

        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0,
                               timeout=60, **kw)
        self.clients.append(client)  # closed by stop()
        return client

    def wait_idle(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.engine.running is not None or self.engine.waiting:
            if time.monotonic() > deadline:
                raise AssertionError("the engine is still busy")
            time.sleep(0.02)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.engine is not None:
            self.engine.stop()
        self.server.should_exit = True
        self.thread.join(20)
        if self.engine is not None:
            self.engine.close(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive(), "the server thread did not stop"
