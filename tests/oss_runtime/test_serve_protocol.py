"""The pure parts of oss-runtime serve: request validation, harmony in and out, stop strings."""

from __future__ import annotations

import sys

import pytest

from oss_runtime.chat import Piece
from oss_runtime.errors import RequestError
from oss_runtime.serve.harmony import ReplyBuilder, StopMatcher, template_messages, tool_prefix
from oss_runtime.serve.protocol import max_new_tokens, parse_chat, parse_completion


def test_import_is_light() -> None:
    import subprocess

    code = ("import sys, oss_runtime, oss_runtime.serve, oss_runtime.serve.protocol, "
            "oss_runtime.serve.harmony, oss_runtime.errors\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'fastapi', 'uvicorn', 'transformers', 'starlette')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_parse_chat_defaults_and_names() -> None:
    req = parse_chat({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "be "}, {"type": "text",
                                                                          "text": "brief"}]},
        {"role": "user", "content": "hi"}], "max_tokens": 5, "max_completion_tokens": 7,
        "stop": "x", "seed": 3, "user": "ignored", "parallel_tool_calls": True}, "m")
    assert req.messages[0] == {"role": "system", "content": "be brief"}
    assert req.sampling.max_tokens == 7 and req.sampling.stop == ("x",)
    assert (req.sampling.temperature, req.sampling.top_p, req.sampling.seed) == (1.0, 1.0, 3)
    assert req.tool_choice == "none" and req.reasoning_effort == "medium" and not req.stream
    with pytest.raises(RequestError, match="'seed' must be an integer, got a boolean") as e:
        parse_chat({"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": True},
                   "m")
    assert e.value.status == 400 and e.value.param == "seed"
    with pytest.raises(RequestError, match="top_p"):
        parse_chat({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0}, "m")
    assert parse_completion({"model": "m", "prompt": [[1, 2]]}, "m").prompt == (1, 2)


def test_tool_calls_become_one_call_per_message_with_its_result() -> None:
    req = parse_chat({"model": "m", "tools": [{"type": "function", "function": {"name": "f"}},
                                              {"type": "function", "function": {"name": "g"}}],
                      "tool_choice": {"type": "function", "function": {"name": "g"}},
                      "messages": [
        {"role": "developer", "content": "use tools"},
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "reasoning_content": "two calls",
         "tool_calls": [
             {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
             {"id": "b", "type": "function", "function": {"name": "g", "arguments": "oops"}}]},
        {"role": "tool", "tool_call_id": "b", "content": "B"},
        {"role": "tool", "tool_call_id": "a", "content": "A"},
    ]}, "m")
    assert (req.tool_choice, req.tool_name) == ("function", "g")
    assert req.tools[0]["function"]["parameters"] == {"type": "object", "properties": {}}
    out = template_messages(req.messages)
    assert [m["role"] for m in out] == ["developer", "user", "assistant", "tool", "assistant",
                                       "tool"]
    assert out[2]["tool_calls"][0]["function"]["arguments"] == {"x": 1}
    assert out[2]["thinking"] == "two calls" and "thinking" not in out[4]
    assert out[3]["content"] == "A" and out[5]["content"] == "B"
    assert out[4]["tool_calls"][0]["function"]["arguments"] == "oops"
    assert tool_prefix("function", "g") == \
        "<|channel|>commentary to=functions.g <|constrain|>json<|message|>"
    assert tool_prefix("required", None) == "<|channel|>commentary to=functions."
    assert tool_prefix("auto", None) is None
    with pytest.raises(RequestError, match="did not make"):
        template_messages([*req.messages[:3], {"role": "tool", "tool_call_id": "zz",
                                                "content": "?"}])


def test_stop_matcher_holds_back_a_partial_stop() -> None:
    m = StopMatcher(["END", "xy"])
    assert m.feed("abcE") == "ab" and m.feed("N") == "c" and m.feed("D and more") == ""
    assert m.hit and m.feed("later") == "" and m.flush() == ""
    n = StopMatcher([])
    assert n.feed("abc") == "abc" and n.flush() == ""


def test_reply_builder_stream_equals_message() -> None:
    b = ReplyBuilder(stops=["STOP"])
    pieces = [Piece("analysis", "think", None, 0), Piece("final", "Hello ", None, 1),
              Piece("final", "world ST", None, 1), Piece("final", "OP more", None, 1)]
    deltas = [d for p in pieces for d in b.add(p)] + b.finish("<|return|>", None, 2)
    assert "".join(d.get("content", "") for d in deltas) == b.message()["content"] == \
        "Hello world "
    assert b.message()["reasoning_content"] == "think" and b.finish_reason("<|return|>") == "stop"
    c = ReplyBuilder()
    deltas = c.add(Piece("commentary", '{"a"', "functions.f", 1)) + \
        c.add(Piece("commentary", ": 1}", "functions.f", 1))
    assert deltas[0]["tool_calls"][0]["function"] == {"name": "f", "arguments": ""}
    msg = c.message()
    assert msg["content"] is None and msg["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    assert c.finish_reason("<|call|>") == "tool_calls"
    empty = ReplyBuilder()  # a call with no argument text at all is still a call
    assert empty.finish("<|call|>", "functions.now", 1)[0]["tool_calls"][0]["function"][
        "name"] == "now"


def test_max_new_tokens() -> None:
    assert max_new_tokens(None, 100, 4096) == 3996
    assert max_new_tokens(None, 100, 4096, server_cap=512) == 512
    assert max_new_tokens(10, 100, 4096) == 10
    with pytest.raises(RequestError, match="over the model's context of 4096") as e:
        max_new_tokens(4000, 100, 4096)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(RequestError, match="--max-tokens"):
        max_new_tokens(600, 100, 4096, server_cap=512)
    with pytest.raises(RequestError, match="the prompt is 5000 tokens"):
        max_new_tokens(None, 5000, 4096)
