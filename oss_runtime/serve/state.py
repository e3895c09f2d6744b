"""What the server knows: its settings (`ServeSettings`) and the model once loaded (`ServerState`).

The state starts empty; the runner loads the model in the background and `attach`es it (or
records why loading failed with `fail`). Until then ``/health`` and every ``/v1`` route answer
503 with ``Retry-After``, so an orchestrator can wait on ``/health``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from oss_runtime.errors import CheckpointError, RequestError

__all__ = ["ServeSettings", "ServerState"]

MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """The options of ``oss-runtime serve`` that shape the HTTP API (see docs/serve.md)."""

    model_name: str = "gpt-oss-20b"
    api_key: str | None = None  # Bearer token for /v1 (None: no authentication)
    max_queue: int = 16  # requests waiting behind the running one
    max_body: int = 4 * MiB  # bytes of a request body (413 above)
    max_header: int = 16 * 1024  # bytes of the request line and headers (431 above)
    max_tokens: int | None = None  # default and ceiling of max_tokens (None: the context)
    log_prompts: bool = False  # add the request's messages / prompt to the log line


class ServerState:
    """The loaded runtime, its engine, and what the routes derive from it once."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.runtime: Any = None
        self.engine: Any = None
        self.error: str | None = None
        self.created = int(time.time())
        self.tokenizer: Any = None
        self.stop_ids: set[int] = set()
        self.context = 0
        self.vocab = 0
        self.template_tools = False
        self.source = ""

    @property
    def ready(self) -> bool:
        return self.engine is not None and self.error is None

    def attach(self, runtime: Any) -> None:
        """Serve ``runtime`` (a `GptOssRuntime`): start its engine."""
        from oss_runtime.chat import HarmonyParser
        from oss_runtime.serve.engine import Engine

        tok = runtime.tokenizer
        if tok is None or not getattr(tok, "chat_template", None):
            raise CheckpointError(
                f"{runtime.path} has no tokenizer with a chat template (tokenizer.json, "
                "tokenizer_config.json, chat_template.jinja): the server needs one to render "
                "harmony prompts.")
        self.runtime, self.tokenizer = runtime, tok
        self.stop_ids = set(HarmonyParser(tok).stops)
        config = runtime.model.config
        self.context = int(getattr(config, "max_position_embeddings", 0) or 4096)
        self.vocab = int(getattr(config, "vocab_size", 0) or len(tok))
        template = str(tok.chat_template)
        self.template_tools = "tools" in template and "tool_calls" in template
        self.source = str(runtime.path)
        self.engine = Engine(runtime.model, max_queue=self.settings.max_queue)

    def fail(self, message: str) -> None:
        self.error = message

    def require_ready(self) -> Any:
        if self.error is not None:
            raise RequestError(f"the model failed to load: {self.error}", status=503,
                               code="model_load_failed")
        if self.engine is None:
            raise RequestError("the model is still loading; retry after the Retry-After seconds "
                               "(GET /health says when it is ready).", status=503,
                               code="model_loading", retry_after=5)
        if self.engine.stopping:
            raise RequestError("the server is shutting down; retry on another instance.",
                               status=503, code="shutting_down", retry_after=5)
        return self.runtime
