"""Request bodies of the OpenAI API, validated into frozen dataclasses (pure: no I/O, no torch).

`parse_chat` and `parse_completion` take the decoded JSON body and the served model name and
return a `ChatRequest` / `CompletionRequest`, or raise `RequestError` (HTTP 400) naming the
field at fault, as OpenAI does (``param``). Unknown fields are ignored (clients such as
LangChain send ``user``, ``metadata``, ``parallel_tool_calls``...); known ones this server does
not implement are refused when they ask for something other than the default (``n > 1``,
``logprobs``, penalties, ``logit_bias``, ``response_format`` other than text), never ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from oss_runtime.errors import RequestError

__all__ = ["ChatRequest", "CompletionRequest", "Sampling", "load_json", "max_new_tokens",
           "parse_chat", "parse_completion"]

ROLES = ("system", "developer", "user", "assistant", "tool")
EFFORTS = ("low", "medium", "high")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_STOP = 4


@dataclasses.dataclass(frozen=True)
class Sampling:
    max_tokens: int | None  # None: up to the context (or the server's --max-tokens)
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[dict[str, Any], ...]  # normalized: text content, tool calls with ids
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False
    reasoning_effort: str = "medium"
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str = "none"  # "none" | "auto" | "required" | "function"
    tool_name: str | None = None  # the function tool_choice names


@dataclasses.dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompt: str | tuple[int, ...]
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False


def _bad(message: str, param: str | None = None, code: str | None = None) -> RequestError:
    return RequestError(message, status=400, param=param, code=code)


def load_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying where it is broken."""
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise _bad("the request body is not UTF-8 text; send JSON.", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise _bad(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column "
                   f"{exc.colno}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise _bad(f"the request body must be a JSON object, not {_kind(body)}.",
                   code="invalid_json")
    return body


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "an integer", float: "a number"}.get(type(value), "a value")


def _get(body: Mapping[str, Any], key: str, kinds: tuple[type, ...], what: str,
         default: Any = None, param: str | None = None) -> Any:
    value = body.get(key)
    if value is None:
        return default
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        raise _bad(f"'{param or key}' must be {what}, got {_kind(value)}: {_short(value)}.",
                   param=param or key, code="invalid_type")
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(body: Mapping[str, Any], key: str, default: float, lo: float, hi: float,
            open_low: bool = False) -> float:
    value = float(_get(body, key, (int, float), "a number", default))
    if not math.isfinite(value) or value > hi or value < lo or (open_low and value <= lo):
        low = f"above {lo:g}" if open_low else f"at least {lo:g}"
        raise _bad(f"'{key}' must be {low} and at most {hi:g}, got {value:g}.", param=key,
                   code="invalid_value")
    return value


def _sampling(body: Mapping[str, Any], keys: tuple[str, ...]) -> Sampling:
    max_tokens = None
    for key in keys:  # max_completion_tokens (the newer name) wins over max_tokens
        value = _get(body, key, (int,), "an integer")
        if value is not None:
            if value < 1:
                raise _bad(f"'{key}' must be at least 1, got {value}.", param=key,
                           code="invalid_value")
            max_tokens = value
    seed = _get(body, "seed", (int,), "an integer")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is None:
        stop = []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise _bad("'stop' must be a non-empty string or an array of non-empty strings.",
                   param="stop", code="invalid_type")
    if len(stop) > MAX_STOP:
        raise _bad(f"'stop' takes at most {MAX_STOP} sequences, got {len(stop)}.", param="stop",
                   code="invalid_value")
    return Sampling(max_tokens=max_tokens,
                    temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
                    top_p=_number(body, "top_p", 1.0, 0.0, 1.0, open_low=True),
                    seed=seed, stop=tuple(stop))


def _unsupported(body: Mapping[str, Any]) -> None:
    n = _get(body, "n", (int,), "an integer", 1)
    if n != 1:
        raise _bad(f"'n' must be 1: this server generates one choice per request (got {n}); send "
                   "several requests instead.", param="n", code="unsupported_parameter")
    for key in ("frequency_penalty", "presence_penalty"):
        if _get(body, key, (int, float), "a number", 0) != 0:
            raise _bad(f"'{key}' is not supported by this server; leave it out or send 0.",
                       param=key, code="unsupported_parameter")
    for key in ("logprobs", "top_logprobs", "logit_bias", "echo", "suffix", "audio"):
        value = body.get(key)
        if value not in (None, False, {}, 0, ""):
            raise _bad(f"'{key}' is not supported by this server; leave it out.", param=key,
                       code="unsupported_parameter")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise _bad("'response_format' other than {\"type\": \"text\"} is not supported by this "
                   "server (no constrained decoding); describe the format in the messages, or "
                   "use tools.", param="response_format", code="unsupported_parameter")
    best_of = body.get("best_of")
    if best_of not in (None, 1):
        raise _bad("'best_of' must be 1 on this server.", param="best_of",
                   code="unsupported_parameter")


def _model(body: Mapping[str, Any], served: str) -> str:
    model = _get(body, "model", (str,), "a string")
    if not model:
        raise _bad(f"'model' is required; this server serves {served!r}.", param="model",
                   code="missing_parameter")
    if model != served:
        raise _bad(f"the model {model!r} does not exist on this server; it serves {served!r} "
                   "(GET /v1/models).", param="model", code="model_not_found")
    return str(model)


def _stream(body: Mapping[str, Any]) -> tuple[bool, bool]:
    stream = bool(_get(body, "stream", (bool,), "a boolean", False))
    options = _get(body, "stream_options", (dict,), "an object")
    if options is not None and not stream:
        raise _bad("'stream_options' is only allowed when 'stream' is true.",
                   param="stream_options", code="invalid_value")
    usage = _get(options or {}, "include_usage", (bool,), "a boolean", False,
                 param="stream_options.include_usage")
    return stream, bool(usage)


def _text(content: Any, param: str, *, allow_none: bool = False) -> str | None:
    if content is None and allow_none:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                kind = part.get("type") if isinstance(part, dict) else _kind(part)
                raise _bad(f"'{param}[{i}]' is a {kind!r} part; this server takes text parts "
                           "only ({\"type\": \"text\", \"text\": ...}).", param=f"{param}[{i}]",
                           code="unsupported_content")
            if not isinstance(part.get("text"), str):
                raise _bad(f"'{param}[{i}].text' must be a string.", param=f"{param}[{i}].text",
                           code="invalid_type")
            parts.append(part["text"])
        return "".join(parts)
    raise _bad(f"'{param}' must be a string or an array of text parts, got {_kind(content)}.",
               param=param, code="invalid_type")


def _tool_calls(calls: Any, param: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise _bad(f"'{param}' must be an array.", param=param, code="invalid_type")
    out = []
    for i, call in enumerate(calls):
        p = f"{param}[{i}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad(f"'{p}' must be {{\"id\": ..., \"type\": \"function\", \"function\": "
                       "{\"name\": ..., \"arguments\": \"<JSON text>\"}}.", param=p,
                       code="invalid_value")
        args = fn.get("arguments", "")
        if not isinstance(args, (str, dict)):
            raise _bad(f"'{p}.function.arguments' must be a string of JSON.",
                       param=f"{p}.function.arguments", code="invalid_type")
        out.append({"id": str(call.get("id") or f"call_{i}"), "name": fn["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args)})
    return out


def _messages(body: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array of {\"role\": ..., \"content\": ...}.",
                   param="messages", code="invalid_value" if messages is not None
                   else "missing_parameter")
    out = []
    for i, m in enumerate(messages):
        p = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(f"'{p}' must be an object, got {_kind(m)}.", param=p, code="invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise _bad(f"'{p}.role' must be one of {', '.join(ROLES)}, got {_short(role)}.",
                       param=f"{p}.role", code="invalid_value")
        msg: dict[str, Any] = {"role": role}
        if role == "assistant":
            msg["content"] = _text(m.get("content"), f"{p}.content", allow_none=True)
            if m.get("tool_calls"):
                msg["tool_calls"] = _tool_calls(m["tool_calls"], f"{p}.tool_calls")
            thinking = m.get("reasoning_content", m.get("reasoning"))
            if thinking is not None:
                msg["reasoning"] = _text(thinking, f"{p}.reasoning_content")
            if msg["content"] is None and not msg.get("tool_calls"):
                msg["content"] = ""
        else:
            if "content" not in m:
                raise _bad(f"'{p}.content' is required for a {role} message.",
                           param=f"{p}.content", code="missing_parameter")
            msg["content"] = _text(m["content"], f"{p}.content")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _bad(f"'{p}.tool_call_id' is required: the id of the tool call this "
                           "message answers.", param=f"{p}.tool_call_id",
                           code="missing_parameter")
            msg["tool_call_id"] = call_id
        out.append(msg)
    return tuple(out)


def _tools(body: Mapping[str, Any]) -> tuple[tuple[dict[str, Any], ...], str, str | None]:
    tools = _get(body, "tools", (list,), "an array", [])
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or \
                not isinstance(fn, dict):
            raise _bad(f"'{p}' must be {{\"type\": \"function\", \"function\": {{\"name\": ..., "
                       "\"parameters\": {...}}}}; only function tools are supported.", param=p,
                       code="invalid_value")
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _bad(f"'{p}.function.name' must be 1 to 64 letters, digits, '_', '-' or '.', "
                       f"got {_short(name)}.", param=f"{p}.function.name", code="invalid_value")
        params = _get(fn, "parameters", (dict,), "a JSON Schema object",
                      {"type": "object", "properties": {}}, param=f"{p}.function.parameters")
        desc = _get(fn, "description", (str,), "a string", "", param=f"{p}.function.description")
        out.append({"type": "function",
                    "function": {"name": name, "description": desc, "parameters": params}})
    names = [t["function"]["name"] for t in out]
    choice = body.get("tool_choice")
    if choice is None:
        return tuple(out), ("auto" if out else "none"), None
    if isinstance(choice, str) and choice in ("none", "auto", "required"):
        if choice == "required" and not out:
            raise _bad("'tool_choice' is 'required' but 'tools' is empty.", param="tool_choice",
                       code="invalid_value")
        return tuple(out), choice, None
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str):
        raise _bad("'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", "
                   "\"function\": {\"name\": ...}}.", param="tool_choice", code="invalid_value")
    if name not in names:
        raise _bad(f"'tool_choice' names the function {name!r}, which is not in 'tools'.",
                   param="tool_choice", code="invalid_value")
    return tuple(out), "function", name


def parse_chat(body: Mapping[str, Any], served_model: str) -> ChatRequest:
    """A POST /v1/chat/completions body, validated."""
    model = _model(body, served_model)
    _unsupported(body)
    effort = body.get("reasoning_effort")
    if effort is None:
        effort = (body.get("reasoning") or {}).get("effort") if isinstance(
            body.get("reasoning"), dict) else None
    effort = effort or "medium"
    if effort not in EFFORTS:
        raise _bad(f"'reasoning_effort' must be one of {', '.join(EFFORTS)}, got {_short(effort)}.",
                   param="reasoning_effort", code="invalid_value")
    stream, usage = _stream(body)
    tools, choice, name = _tools(body)
    return ChatRequest(model=model, messages=_messages(body),
                       sampling=_sampling(body, ("max_tokens", "max_completion_tokens")),
                       stream=stream, include_usage=usage, reasoning_effort=effort,
                       tools=tools, tool_choice=choice, tool_name=name)


def parse_completion(body: Mapping[str, Any], served_model: str) -> CompletionRequest:
    """A POST /v1/completions body, validated: one prompt, as text or token ids."""
    model = _model(body, served_model)
    _unsupported(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, list) and prompt and all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
        prompt = tuple(prompt)
    elif not isinstance(prompt, str) or not prompt:
        raise _bad("'prompt' must be one non-empty string (or one array of token ids); batches "
                   "of several prompts are not supported.", param="prompt",
                   code="invalid_value" if prompt is not None else "missing_parameter")
    stream, usage = _stream(body)
    return CompletionRequest(model=model, prompt=prompt, sampling=_sampling(body, ("max_tokens",)),
                             stream=stream, include_usage=usage)


def max_new_tokens(requested: int | None, prompt_tokens: int, context: int,
                   server_cap: int | None = None) -> int:
    """Tokens to generate: the request's ``max_tokens``, or what the context (and the server's
    cap) leaves; a prompt plus ``max_tokens`` over the context is a 400, as with OpenAI."""
    room = context - prompt_tokens
    param = "max_tokens" if requested is not None else "messages"
    if requested is not None and server_cap is not None and requested > server_cap:
        raise _bad(f"'max_tokens' is {requested}, over this server's limit of {server_cap} "
                   "(--max-tokens).", param="max_tokens", code="invalid_value")
    if room < 1 or (requested is not None and requested > room):
        asked = f" plus max_tokens {requested}" if requested is not None else ""
        raise _bad(f"the prompt is {prompt_tokens} tokens{asked}, over the model's context of "
                   f"{context} tokens; shorten the messages or lower max_tokens.", param=param,
                   code="context_length_exceeded")
    if requested is not None:
        return requested
    return min(room, server_cap) if server_cap else room
