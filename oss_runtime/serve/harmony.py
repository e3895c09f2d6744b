"""OpenAI chat messages into harmony, and harmony back into OpenAI's message (pure; no torch).

In: `template_messages` turns validated OpenAI messages into what gpt-oss's chat template takes
(the template, not this module, writes the harmony text): system and developer messages become
the developer instructions; an assistant message's ``tool_calls`` become one assistant message
per call (``{"tool_calls": [{"function": {"name", "arguments": <parsed JSON>}}], "thinking":
<its reasoning_content>}``), each followed by the ``tool`` message that answers it (matched by
``tool_call_id``), since harmony names the function a result comes from by the call before it::

    <|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{...}<|call|>
    <|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"..."<|end|>

`tool_prefix` is the start of the assistant's reply a ``tool_choice`` forces (a named function:
its whole header; ``required``: ``<|channel|>commentary to=functions.``).

Out: `ReplyBuilder` takes the parser's `oss_runtime.chat.Piece` events: the ``analysis`` channel
becomes ``reasoning_content``, a message to ``functions.NAME`` becomes a ``tool_calls`` entry
(arguments streamed as they come), the ``final`` channel (and ``commentary`` without a recipient,
harmony's preamble to the user) becomes ``content``, cut at the first ``stop`` string. The same
builder serves streamed and whole responses, so their texts are equal.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from oss_runtime.chat import Piece
from oss_runtime.errors import RequestError

__all__ = [
    "RawText",
    "ReplyBuilder",
    "StopMatcher",
    "needs_tools",
    "new_id",
    "template_messages",
    "tool_prefix",
]


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def needs_tools(messages: Sequence[dict[str, Any]], tools_rendered: bool) -> bool:
    """Whether rendering needs a template that knows tools (tools, calls or tool results)."""
    return tools_rendered or any(m["role"] == "tool" or m.get("tool_calls") for m in messages)


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON: the template quotes it as a string


def template_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated OpenAI messages as the gpt-oss chat template's input; see the module docstring."""
    instructions = [m["content"] for m in messages if m["role"] in ("system", "developer")]
    out: list[dict[str, Any]] = []
    if any(instructions):
        out.append({"role": "developer", "content": "\n\n".join(i for i in instructions if i)})
    i, rest = 0, [m for m in messages if m["role"] not in ("system", "developer")]
    while i < len(rest):
        m = rest[i]
        i += 1
        if m["role"] == "user":
            out.append({"role": "user", "content": m["content"]})
        elif m["role"] == "tool":
            raise RequestError(
                f"a tool message (tool_call_id {m['tool_call_id']!r}) does not follow an "
                "assistant message whose tool_calls include that id.", param="messages",
                code="invalid_value")
        elif not m.get("tool_calls"):
            out.append({"role": "assistant", "content": m["content"] or ""})
        else:
            results: dict[str, str] = {}
            while i < len(rest) and rest[i]["role"] == "tool":
                results[rest[i]["tool_call_id"]] = rest[i]["content"]
                i += 1
            ids = {c["id"] for c in m["tool_calls"]}
            stray = [k for k in results if k not in ids]
            if stray:
                raise RequestError(
                    f"a tool message answers tool_call_id {stray[0]!r}, which the assistant "
                    "message before it did not make.", param="messages", code="invalid_value")
            thinking = m.get("reasoning") or m["content"] or ""
            for n, call in enumerate(m["tool_calls"]):
                msg: dict[str, Any] = {"role": "assistant", "tool_calls": [{
                    "type": "function", "id": call["id"],
                    "function": {"name": call["name"], "arguments": _arguments(call["arguments"])},
                }]}
                if n == 0 and thinking:
                    msg["thinking"] = thinking
                out.append(msg)
                if call["id"] in results:
                    out.append({"role": "tool", "content": results[call["id"]]})
    return out


def tool_prefix(choice: str, name: str | None) -> str | None:
    """The harmony text a ``tool_choice`` forces at the start of the reply, or None."""
    if choice == "function" and name:
        return f"<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>"
    if choice == "required":
        return "<|channel|>commentary to=functions."
    return None


class StopMatcher:
    """Cuts a text stream at the first of the ``stop`` strings, holding back what may begin one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buf = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if self.hit:
            return ""
        self.buf += text
        found = [i for i in (self.buf.find(s) for s in self.stops) if i >= 0]
        if found:
            out, self.buf, self.hit = self.buf[: min(found)], "", True
            return out
        cut = max(0, len(self.buf) - self.hold)
        out, self.buf = self.buf[:cut], self.buf[cut:]
        return out

    def flush(self) -> str:
        out, self.buf = ("" if self.hit else self.buf), ""
        return out


class ReplyBuilder:
    """Parser pieces into chat deltas and the final message; see the module docstring."""

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self.stop = StopMatcher(stops)
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []

    @property
    def stopped(self) -> bool:
        """A stop string was met: the generation should end."""
        return self.stop.hit

    def _call(self, name: str, message: int) -> list[dict[str, Any]]:
        if self.calls and self.calls[-1]["message"] == message:
            return []
        call = {"id": new_id("call").replace("-", "_"), "name": name, "arguments": "",
                "message": message}
        self.calls.append(call)
        return [{"tool_calls": [{"index": len(self.calls) - 1, "id": call["id"],
                                 "type": "function",
                                 "function": {"name": name, "arguments": ""}}]}]

    def _content(self, text: str) -> list[dict[str, Any]]:
        if text:
            self.content.append(text)
            return [{"content": text}]
        return []

    def add(self, piece: Piece) -> list[dict[str, Any]]:
        """The deltas one piece makes (none once a stop string has been met)."""
        if self.stop.hit:
            return []
        if piece.recipient and piece.recipient.startswith("functions."):
            out = self._call(piece.recipient.removeprefix("functions."), piece.message)
            self.calls[-1]["arguments"] += piece.text
            out.append({"tool_calls": [{"index": len(self.calls) - 1,
                                        "function": {"arguments": piece.text}}]})
            return out
        if piece.recipient:  # a built-in tool (browser, python) this server does not run
            return []
        if piece.channel == "analysis":
            self.reasoning.append(piece.text)
            return [{"reasoning_content": piece.text}]
        return self._content(self.stop.feed(piece.text))

    def finish(self, done: str | None, recipient: str | None, messages: int) -> list[dict[str, Any]]:
        """The last deltas: text held back for the stop strings; a call with no arguments yet."""
        out = [] if self.stop.hit else self._content(self.stop.flush())
        if done == "<|call|>" and recipient and recipient.startswith("functions.") \
                and not self.stop.hit:
            out += self._call(recipient.removeprefix("functions."), messages - 1)
        return out

    def finish_reason(self, done: str | None) -> str:
        if self.calls:
            return "tool_calls"
        return "stop" if (self.stop.hit or done) else "length"

    def message(self) -> dict[str, Any]:
        calls = [{"id": c["id"], "type": "function",
                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                 for c in self.calls]
        msg: dict[str, Any] = {"role": "assistant",
                               "content": "".join(self.content) if self.content or not calls
                               else None,
                               "reasoning_content": "".join(self.reasoning) or None}
        if calls:
            msg["tool_calls"] = calls
        return msg


class RawText:
    """Generated token ids as text for /v1/completions: special tokens kept, incomplete UTF-8
    characters held back, cut at the stop strings."""

    def __init__(self, tokenizer: Any, stops: Sequence[str] = ()) -> None:
        self.tok = tokenizer
        self.ids: list[int] = []
        self.emitted = ""
        self.stop = StopMatcher(stops)
        self.text: list[str] = []

    def _take(self, text: str) -> str:
        out = self.stop.feed(text)
        self.text.append(out)
        return out

    def add(self, token: int) -> str:
        self.ids.append(token)
        text = str(self.tok.decode(self.ids, skip_special_tokens=False))
        if text.endswith("\ufffd"):
            return ""
        piece, self.emitted = text[len(self.emitted):], text
        return self._take(piece)

    def finish(self) -> str:
        text = str(self.tok.decode(self.ids, skip_special_tokens=False))
        piece, self.emitted = text[len(self.emitted):], text
        out = self._take(piece) if piece else ""
        tail = self.stop.flush()
        self.text.append(tail)
        return out + tail
