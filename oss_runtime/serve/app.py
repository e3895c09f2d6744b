"""The FastAPI app of ``oss-runtime serve``: the OpenAI routes over a `ServerState`.

``GET /health``, ``GET /v1/models`` (and ``/v1/models/{id}``), ``POST /v1/chat/completions``
and ``POST /v1/completions``. Bodies are read with a bound (413), validated by
`oss_runtime.serve.protocol`, rendered by the checkpoint's chat template, queued on the
`Engine`, and answered whole or as server-sent events. Every failure is OpenAI's error body
with its status; a fault inside the server is a 500 whose body says so in one sentence (the
details go to the server log, never a traceback to the client).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from oss_runtime.chat import HarmonyParser, render_prompt
from oss_runtime.errors import RequestError
from oss_runtime.serve import responses as R
from oss_runtime.serve.engine import Job
from oss_runtime.serve.harmony import (
    RawText,
    ReplyBuilder,
    needs_tools,
    new_id,
    template_messages,
    tool_prefix,
)
from oss_runtime.serve.middleware import Gate
from oss_runtime.serve.protocol import load_json, max_new_tokens, parse_chat, parse_completion
from oss_runtime.serve.state import ServerState

__all__ = ["create_app"]

log = logging.getLogger("oss_runtime.serve")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGone(Exception):
    """The client closed the connection before the answer was ready."""


def _error(exc: RequestError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(R.error_body(exc), status_code=exc.status, headers=headers)


async def _body(request: Request, limit: int) -> bytes:
    too_big = RequestError(f"the request body is over this server's limit of {limit} bytes "
                           "(--max-body-bytes).", status=413, code="request_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _tokens(job: Job, record: dict[str, Any], request: Request | None = None
                  ) -> AsyncIterator[int]:
    """The job's tokens as they come; with ``request``, a vanished client cancels the job."""
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(job.events.get(), 0.5)
            except asyncio.TimeoutError:
                if request is not None and await request.is_disconnected():
                    record["finish"] = "cancelled"
                    raise ClientGone() from None
                continue
            if kind == "token":
                record["completion_tokens"] = record.get("completion_tokens", 0) + 1
                yield value
            elif kind == "error":
                raise RequestError("the model failed while generating; the server log has the "
                                   "details.", status=500, code="generation_failed")
            elif value == "shutdown":
                raise RequestError("the server is shutting down; this answer is incomplete.",
                                   status=503, code="shutting_down", retry_after=5)
            else:
                return
    finally:
        if job.state != "done" or record.get("finish") == "cancelled":
            job.cancel()
            record.setdefault("finish", "cancelled")


def create_app(state: ServerState) -> FastAPI:
    """The app; ``state`` gets the model later (``/health`` is 503 until then)."""
    settings = state.settings
    name = settings.model_name
    app = FastAPI(title="oss-runtime serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Gate, settings=settings)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        what = {404: f"there is no route {request.url.path}; this server has /health, "
                     "/v1/models, /v1/chat/completions and /v1/completions.",
                405: f"{request.method} is not allowed on {request.url.path}."}
        return _error(RequestError(what.get(exc.status_code, str(exc.detail)),
                                   status=exc.status_code,
                                   code={404: "not_found", 405: "method_not_allowed"}.get(
                                       exc.status_code)))

    @app.get("/health")
    async def health() -> JSONResponse:
        if state.error is not None:
            return JSONResponse({"status": "error", "error": state.error}, status_code=503)
        if not state.ready:
            return JSONResponse({"status": "loading"}, status_code=503,
                                headers={"Retry-After": "5"})
        if state.engine.stopping:
            return JSONResponse({"status": "stopping"}, status_code=503)
        return JSONResponse({"status": "ok", "model": name, **state.engine.stats()})

    @app.get("/v1/models")
    async def list_models() -> JSONResponse:
        return JSONResponse(R.models(name, state.created, state.source))

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str) -> JSONResponse:
        if model != name:
            return _error(RequestError(f"the model {model!r} does not exist on this server; it "
                                       f"serves {name!r}.", status=404, code="model_not_found"))
        return JSONResponse(R.models(name, state.created, state.source)["data"][0])

    async def guarded(request: Request, handler: Any) -> Response:
        record = request.scope.setdefault("oss_log", {})
        try:
            state.require_ready()
            body = load_json(await _body(request, settings.max_body))
            if settings.log_prompts:
                record["prompt_text"] = body.get("messages", body.get("prompt"))
            return await handler(request, body, record)  # type: ignore[no-any-return]
        except RequestError as exc:
            record["error"] = exc.code
            return _error(exc)
        except ClientGone:
            return Response(status_code=499)
        except Exception as exc:  # a bug: one line in the log, one sentence to the client
            log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
            log.debug("internal error", exc_info=True)
            record["error"] = "internal"
            return _error(RequestError("internal error in the server; its log has the details.",
                                       status=500, code="internal_error"))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await guarded(request, _chat)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await guarded(request, _completion)

    def _submit(prompt: list[int], requested: int | None, sampling: Any, record: dict[str, Any]
                ) -> Job:
        max_tokens = max_new_tokens(requested, len(prompt), state.context, settings.max_tokens)
        record["prompt_tokens"] = len(prompt)
        job = Job(prompt, max_tokens, state.stop_ids, temperature=sampling.temperature,
                  top_p=sampling.top_p, seed=sampling.seed)
        state.engine.submit(job)
        return job

    async def _chat(request: Request, body: dict[str, Any], record: dict[str, Any]) -> Response:
        req = parse_chat(body, name)
        tools = req.tools if req.tool_choice != "none" else ()
        if needs_tools(req.messages, bool(tools)) and not state.template_tools:
            raise RequestError("this checkpoint's chat template does not render tools, tool "
                               "calls or tool results; send plain messages, or serve a "
                               "checkpoint whose template does (gpt-oss's own).",
                               param="tools", code="unsupported_template")
        tok = state.tokenizer
        try:
            prompt = render_prompt(tok, template_messages(req.messages),
                                   reasoning_effort=req.reasoning_effort, tools=tools or None)
        except RequestError:
            raise
        except Exception as exc:  # the template's own raise_exception, or a jinja error
            raise RequestError(f"the chat template refused these messages: {exc}",
                               param="messages", code="invalid_messages") from None
        prefix = tool_prefix(req.tool_choice, req.tool_name)
        forced = list(tok(prefix, add_special_tokens=False)["input_ids"]) if prefix else []
        job = _submit(prompt + forced, req.sampling.max_tokens, req.sampling, record)
        parser, builder = HarmonyParser(tok), ReplyBuilder(req.sampling.stop)
        for token in forced:
            parser.feed_pieces(token)
        rid, created = new_id("chatcmpl"), R.now()

        def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
            use = R.usage(len(job.prompt_ids), record.get("completion_tokens", 0))
            return R.sse(R.chat_chunk(rid, name, created, delta, finish, use,
                                      with_usage=req.include_usage and delta is None))

        async def deltas(source: AsyncIterator[int]) -> AsyncIterator[dict[str, Any]]:
            async for token in source:
                for piece in parser.feed_pieces(token):
                    for delta in builder.add(piece):
                        yield delta
                if builder.stopped:
                    job.cancel()
                    break
            for delta in builder.finish(parser.done, parser.recipient, parser.messages):
                yield delta
            record["finish"] = builder.finish_reason(parser.done)

        if not req.stream:
            async for _ in deltas(_tokens(job, record, request)):
                pass
            use = R.usage(len(job.prompt_ids), record.get("completion_tokens", 0))
            return JSONResponse(R.chat_completion(rid, name, created, builder.message(),
                                                  record["finish"], use))

        async def events() -> AsyncIterator[bytes]:
            try:
                yield chunk({"role": "assistant", "content": ""})
                async for delta in deltas(_tokens(job, record)):
                    yield chunk(delta)
                yield chunk({}, record["finish"])
                if req.include_usage:
                    yield chunk(None)
                yield R.DONE
            except RequestError as exc:
                record["error"] = exc.code
                yield R.sse(R.error_body(exc))

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def _completion(request: Request, body: dict[str, Any], record: dict[str, Any]
                          ) -> Response:
        req = parse_completion(body, name)
        tok = state.tokenizer
        if isinstance(req.prompt, str):
            prompt = [int(i) for i in tok(req.prompt, add_special_tokens=False)["input_ids"]]
        else:
            prompt = list(req.prompt)
            if max(prompt) >= state.vocab:
                raise RequestError(f"'prompt' has the token id {max(prompt)}, outside the "
                                   f"vocabulary of {state.vocab}.", param="prompt",
                                   code="invalid_value")
        job = _submit(prompt, req.sampling.max_tokens, req.sampling, record)
        raw = RawText(tok, req.sampling.stop)
        rid, created = new_id("cmpl"), R.now()

        async def pieces(source: AsyncIterator[int]) -> AsyncIterator[str]:
            last = None
            async for token in source:
                last = token
                if token in state.stop_ids:
                    break
                text = raw.add(token)
                if text:
                    yield text
                if raw.stop.hit:
                    job.cancel()
                    break
            tail = raw.finish()
            if tail:
                yield tail
            record["finish"] = "stop" if raw.stop.hit or last in state.stop_ids else "length"

        def use() -> dict[str, int]:
            return R.usage(len(prompt), record.get("completion_tokens", 0))

        if not req.stream:
            async for _ in pieces(_tokens(job, record, request)):
                pass
            return JSONResponse(R.completion(rid, name, created, "".join(raw.text),
                                             record["finish"], use()))

        async def events() -> AsyncIterator[bytes]:
            try:
                async for text in pieces(_tokens(job, record)):
                    yield R.sse(R.completion_chunk(rid, name, created, text))
                yield R.sse(R.completion_chunk(rid, name, created, "", record["finish"]))
                if req.include_usage:
                    yield R.sse(R.completion_chunk(rid, name, created, None, None, use(), True))
                yield R.DONE
            except RequestError as exc:
                record["error"] = exc.code
                yield R.sse(R.error_body(exc))

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    return app
