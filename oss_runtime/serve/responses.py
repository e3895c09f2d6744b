"""OpenAI's response bodies: completions, stream chunks, usage, the model list, errors (pure).

Streams are server-sent events, one ``data: <JSON>`` event per chunk and ``data: [DONE]`` at the
end, the shape the ``openai`` SDK parses; an error inside a stream is a ``data: {"error": ...}``
event, which the SDK raises as ``APIError``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from oss_runtime.errors import RequestError

__all__ = ["chat_chunk", "chat_completion", "completion", "completion_chunk", "error_body",
           "models", "sse", "usage"]

DONE = b"data: [DONE]\n\n"
FINGERPRINT = "oss-runtime"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def error_body(exc: RequestError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param,
                      "code": exc.code}}


def models(name: str, created: int, root: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                        "owned_by": "oss-runtime", "root": root}]}


def chat_completion(rid: str, model: str, created: int, message: dict[str, Any],
                    finish_reason: str, use: dict[str, int]) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason}],
            "usage": use}


def chat_chunk(rid: str, model: str, created: int, delta: dict[str, Any] | None,
               finish_reason: str | None = None, use: dict[str, int] | None = None,
               with_usage: bool = False) -> dict[str, Any]:
    """One ``chat.completion.chunk``: a delta, or (``delta=None``) the usage chunk, whose
    ``choices`` is empty, as OpenAI sends it with ``stream_options.include_usage``."""
    body: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created,
                            "model": model, "system_fingerprint": FINGERPRINT, "choices": []}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None,
                            "finish_reason": finish_reason}]
    if with_usage:
        body["usage"] = use
    return body


def completion(rid: str, model: str, created: int, text: str, finish_reason: str,
               use: dict[str, int]) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "text": text, "logprobs": None,
                         "finish_reason": finish_reason}],
            "usage": use}


def completion_chunk(rid: str, model: str, created: int, text: str | None,
                     finish_reason: str | None = None, use: dict[str, int] | None = None,
                     with_usage: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"id": rid, "object": "text_completion", "created": created,
                            "model": model, "system_fingerprint": FINGERPRINT, "choices": []}
    if text is not None:
        body["choices"] = [{"index": 0, "text": text, "logprobs": None,
                            "finish_reason": finish_reason}]
    if with_usage:
        body["usage"] = use
    return body


def now() -> int:
    return int(time.time())
