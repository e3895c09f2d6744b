"""oss-runtime serve through the real `openai` client, on loopback, over a real tiny model.

The model is `_oss_scripted`'s checkpoint: a normal tiny gpt-oss whose weights make its greedy
answers known harmony (analysis then final; a call to get_weather; an answer to the tool
result; an endless "la la la"), so reasoning_content and tool calls come from real generation.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="serving needs torch")
pytest.importorskip("fastapi", reason="serving needs the serve extra")
openai = pytest.importorskip("openai", reason="the tests use the openai client")
httpx = pytest.importorskip("httpx")

from _oss_scripted import (  # noqa: E402
    AFTER_TOOL,
    FINAL,
    REASONING,
    TOOL_REASONING,
    write_scripted_checkpoint,
)
from _oss_serve import RunningServer  # noqa: E402

from oss_runtime import load_gpt_oss_20b  # noqa: E402
from oss_runtime.chat import render_prompt  # noqa: E402
from oss_runtime.environment import Environment  # noqa: E402

CPU = Environment(cpu_count=2, total_ram=16 * 1024**3, available_ram=14 * 1024**3)
MODEL = "gpt-oss-20b"
HELLO = [{"role": "user", "content": "say hello"}]
WEATHER = [{"role": "user", "content": "what is the weather in Paris?"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current conditions in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
FOREVER = [{"role": "user", "content": "tell me a story forever"}]


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ck = write_scripted_checkpoint(tmp_path_factory.mktemp("serve") / "ck")
    return load_gpt_oss_20b(ck, progress=False, environment=CPU, dtype="float32", kernel=False)


@pytest.fixture(scope="module")
def server(rt: Any) -> Iterator[RunningServer]:
    s = RunningServer(rt, max_queue=8, max_body=64 * 1024, max_header=8 * 1024)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(server: RunningServer) -> Any:
    server.wait_idle()
    return server.client()


def test_models_and_health(server: RunningServer, client: Any) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    health = httpx.get(f"{server.url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_plain_chat_reasoning_and_usage(rt: Any, client: Any) -> None:
    r = client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0)
    msg, choice = r.choices[0].message, r.choices[0]
    assert msg.role == "assistant" and msg.content == FINAL and choice.finish_reason == "stop"
    assert msg.reasoning_content == REASONING  # the analysis channel, as llama.cpp/vLLM name it
    assert r.object == "chat.completion" and r.model == MODEL and r.id.startswith("chatcmpl-")
    reply = rt.generate(HELLO, max_new_tokens=64, return_analysis=True)  # the same, in process
    assert (reply.text, reply.analysis) == (msg.content, msg.reasoning_content)
    assert r.usage.prompt_tokens == len(render_prompt(rt.tokenizer, HELLO))
    assert r.usage.completion_tokens == len(reply.token_ids)  # the <|return|> included
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_joins_to_the_whole_answer(client: Any) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0)
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0,
                                                 stream=True,
                                                 stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    content = [d.content for d in deltas if d.content]
    assert len(content) > 3 and "".join(content) == whole.choices[0].message.content
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    assert reasoning == REASONING
    assert deltas[0].role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finals[-1] == "stop" and not any(finals[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.id == chunks[0].id and c.object == "chat.completion.chunk" for c in chunks)


def test_greedy_tokens_equal_rt_generate(rt: Any, client: Any) -> None:
    """/v1/completions with the rendered prompt gives exactly the tokens rt.generate made."""
    reply = rt.generate(HELLO, max_new_tokens=64, return_analysis=True)
    prompt = render_prompt(rt.tokenizer, HELLO)
    r = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=64)
    ids = list(reply.token_ids)
    assert r.choices[0].text == rt.tokenizer.decode(ids[:-1], skip_special_tokens=False)
    assert r.usage.completion_tokens == len(ids) and r.choices[0].finish_reason == "stop"
    text = rt.tokenizer.decode(prompt, skip_special_tokens=False)  # the same prompt as text
    again = client.completions.create(model=MODEL, prompt=text, temperature=0, max_tokens=64)
    assert again.choices[0].text == r.choices[0].text
    streamed = client.completions.create(model=MODEL, prompt=text, temperature=0, max_tokens=64,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == r.choices[0].text


def test_tool_call_round_trip(client: Any) -> None:
    r = client.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.reasoning_content == TOOL_REASONING
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"} and call.id
    streamed: dict[str, Any] = {}
    for chunk in client.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS,
                                                temperature=0, stream=True):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            streamed.setdefault("id", tc.id)
            streamed["name"] = streamed.get("name") or tc.function.name
            streamed["args"] = streamed.get("args", "") + (tc.function.arguments or "")
    assert streamed["name"] == "get_weather" and streamed["args"] == call.function.arguments
    history = [*WEATHER, choice.message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"}]
    answer = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS,
                                            temperature=0)
    assert answer.choices[0].message.content == AFTER_TOOL
    assert answer.choices[0].finish_reason == "stop"


def test_stop_strings_and_length(client: Any) -> None:
    r = client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0, stop=[" sky"])
    assert r.choices[0].message.content == "Hello world! The" and r.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0,
                                            stop=" sky", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello world! The"
    r = client.chat.completions.create(model=MODEL, messages=FOREVER, max_completion_tokens=7,
                                       temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 7
    assert r.choices[0].message.content.strip().startswith("la la")
    r = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.content == ""


def _post(server: RunningServer, path: str, body: Any = None, *, raw: bytes | None = None,
          headers: dict[str, str] | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(f"{server.url}{path}", content=content, timeout=30,
                      headers={"content-type": "application/json", **(headers or {})})


def _chat(**kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": HELLO, "temperature": 0, **kw}


BAD_REQUESTS = [
    (_chat(model="gpt-4o"), 400, "model_not_found"),
    (_chat(n=2), 400, "unsupported_parameter"),
    (_chat(temperature="hot"), 400, "invalid_type"),
    (_chat(temperature=3), 400, "invalid_value"),
    (_chat(max_tokens=0), 400, "invalid_value"),
    (_chat(max_tokens=5000), 400, "context_length_exceeded"),
    (_chat(stream="yes"), 400, "invalid_type"),
    (_chat(messages=[]), 400, "invalid_value"),
    (_chat(messages="hello"), 400, "invalid_value"),
    (_chat(messages=[{"role": "robot", "content": "x"}]), 400, "invalid_value"),
    (_chat(messages=[{"role": "user"}]), 400, "missing_parameter"),
    (_chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), 400,
     "unsupported_content"),
    (_chat(messages=[{"role": "tool", "content": "x", "tool_call_id": "c1"}]), 400,
     "invalid_value"),
    (_chat(reasoning_effort="max"), 400, "invalid_value"),
    (_chat(stop=["a", "b", "c", "d", "e"]), 400, "invalid_value"),
    (_chat(logprobs=True), 400, "unsupported_parameter"),
    (_chat(response_format={"type": "json_object"}), 400, "unsupported_parameter"),
    (_chat(tools=[{"type": "function", "function": {"name": "bad name!"}}]), 400, "invalid_value"),
    (_chat(tool_choice="required"), 400, "invalid_value"),
    (_chat(stream_options={"include_usage": True}), 400, "invalid_value"),
    ({"messages": HELLO}, 400, "missing_parameter"),
    ([1, 2], 400, "invalid_json"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_REQUESTS)
def test_bad_requests_are_openai_errors(server: RunningServer, body: Any, status: int,
                                        code: str) -> None:
    r = _post(server, "/v1/chat/completions", body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["type"] == "invalid_request_error"
    assert err["message"].endswith(".") and "\n" not in err["message"]
    assert "Traceback" not in r.text


def test_more_errors(server: RunningServer, client: Any) -> None:
    cases = [
        (_post(server, "/v1/chat/completions", raw=b'{"model": "gpt-oss-20b", '), 400,
         "invalid_json"),
        (_post(server, "/v1/chat/completions", raw=b"\xff\xfe"), 400, "invalid_json"),
        (_post(server, "/v1/chat/completions", _chat(pad="x" * 70_000)), 413,
         "request_too_large"),
        (_post(server, "/v1/chat/completions", _chat(), headers={"x-big": "y" * 9000}), 431,
         "headers_too_large"),
        (httpx.get(f"{server.url}/v1/chat/completions", timeout=10), 405, "method_not_allowed"),
        (httpx.get(f"{server.url}/v2/nothing", timeout=10), 404, "not_found"),
        (_post(server, "/v1/completions", {"model": MODEL, "prompt": ["a", "b"]}), 400,
         "invalid_value"),
        (_post(server, "/v1/completions", {"model": MODEL, "prompt": [99999]}), 400,
         "invalid_value"),
        (_post(server, "/v1/completions", {"model": MODEL, "prompt": "x", "echo": True}), 400,
         "unsupported_parameter"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
    with pytest.raises(openai.BadRequestError, match="does not exist on this server"):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_client_disconnect_stops_generation(server: RunningServer) -> None:
    body = _chat(messages=FOREVER, stream=True, max_tokens=3000)
    before = server.engine.completed
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200, r.read()
        lines = r.iter_lines()
        got = [next(lines) for _ in range(12)]  # a few tokens have arrived
    assert any("la" in line for line in got)
    deadline = time.monotonic() + 10
    while server.engine.completed == before:
        assert time.monotonic() < deadline, "generation did not stop after the client left"
        time.sleep(0.02)
    job = server.engine.recent[-1]
    assert job.reason == "cancelled" and 3 <= job.tokens < 300, job.tokens


def test_eight_concurrent_clients_all_finish(server: RunningServer, client: Any) -> None:
    def one(i: int) -> str:
        c = server.client()
        if i % 2:
            chunks = c.chat.completions.create(model=MODEL, messages=HELLO, temperature=0,
                                               stream=True)
            return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        return str(c.chat.completions.create(model=MODEL, messages=HELLO,
                                             temperature=0).choices[0].message.content)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8), timeout=120))
    assert answers == [FINAL] * 8


def test_queue_full_is_503_with_retry_after(rt: Any, server: RunningServer) -> None:
    server.wait_idle()
    small = RunningServer(rt, max_queue=1)  # the module's server is idle: one engine at a time
    try:
        body = _chat(messages=FOREVER, stream=True, max_tokens=3000)
        with httpx.stream("POST", f"{small.url}/v1/chat/completions", json=body,
                          timeout=30) as running:
            lines = running.iter_lines()  # kept: a dropped iterator closes the connection
            next(lines)
            with httpx.stream("POST", f"{small.url}/v1/chat/completions", json=body,
                              timeout=30) as waiting:
                assert waiting.status_code == 200
                refused = _post(small, "/v1/chat/completions", _chat())
                assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
                assert refused.json()["error"]["code"] == "queue_full"
                with pytest.raises(openai.InternalServerError):
                    small.client().chat.completions.create(model=MODEL, messages=HELLO,
                                                           temperature=0)
        small.wait_idle()
    finally:
        small.stop()


def test_api_key(rt: Any, server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    server.wait_idle()
    caplog.set_level(logging.INFO, logger="oss_runtime.serve")
    keyed = RunningServer(rt, api_key="s3cret-key-91n")
    try:
        with pytest.raises(openai.AuthenticationError, match="not valid"):
            keyed.client(api_key="wrong").models.list()
        r = httpx.get(f"{keyed.url}/v1/models", timeout=10)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "missing_api_key"
        assert httpx.get(f"{keyed.url}/health", timeout=10).status_code == 200  # probes need none
        ok = keyed.client(api_key="s3cret-key-91n").chat.completions.create(
            model=MODEL, messages=HELLO, temperature=0)
        assert ok.choices[0].message.content == FINAL
    finally:
        keyed.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "oss_runtime.serve"]
    assert any(line.startswith("POST /v1/chat/completions 200 prompt=") and "completion=" in line
               and "finish=stop" in line and line.endswith("s") for line in lines)
    assert any(line.startswith("GET /v1/models 401") for line in lines)
    text = "\n".join(lines)
    assert "s3cret" not in text and "wrong" not in text and "say hello" not in text


def test_health_is_not_ready_until_loaded(rt: Any, server: RunningServer) -> None:
    server.wait_idle()
    empty = RunningServer(None)
    try:
        r = httpx.get(f"{empty.url}/health", timeout=10)
        assert r.status_code == 503 and r.json()["status"] == "loading"
        assert r.headers["retry-after"] == "5"
        r = _post(empty, "/v1/chat/completions", _chat())
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_loading"
        empty.state.attach(rt)
        assert httpx.get(f"{empty.url}/health", timeout=10).status_code == 200
        assert empty.client().chat.completions.create(
            model=MODEL, messages=HELLO, temperature=0).choices[0].message.content == FINAL
    finally:
        empty.stop()


def test_log_prompts_only_when_asked(rt: Any, server: RunningServer,
                                     caplog: pytest.LogCaptureFixture) -> None:
    server.wait_idle()
    caplog.set_level(logging.INFO, logger="oss_runtime.serve")
    verbose = RunningServer(rt, log_prompts=True)
    try:
        verbose.client().chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2,
                                                 temperature=0)
    finally:
        verbose.stop()
    assert any("say hello" in r.getMessage() for r in caplog.records)


def test_plain_template_refuses_tools(tmp_path: Path) -> None:
    """A checkpoint whose chat template knows no tools gets a clear 400, not a silent drop."""
    from _oss_tokenizer import write_tokenizer

    from oss_runtime.synth import synth_config, write_checkpoint

    ck = write_tokenizer(write_checkpoint(tmp_path / "ck", synth_config("tiny"), shards=1))
    plain = load_gpt_oss_20b(ck, progress=False, environment=CPU, dtype="float32", kernel=False)
    s = RunningServer(plain)
    try:
        r = _post(s, "/v1/chat/completions", _chat(tools=TOOLS))
        assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_template"
        # a random tiny model: the server's greedy tokens are rt.generate's too
        reply = plain.generate("Why is the sky blue?", max_new_tokens=12, return_analysis=True)
        prompt = render_prompt(plain.tokenizer, "Why is the sky blue?")
        out = s.client().completions.create(model=MODEL, prompt=prompt, temperature=0,
                                            max_tokens=12)
        assert out.usage.completion_tokens == len(reply.token_ids)
        stops = {plain.tokenizer.convert_tokens_to_ids(t) for t in ("<|return|>", "<|call|>",
                                                                    "<|endoftext|>")}
        ids = [t for t in reply.token_ids if t not in stops]
        assert out.choices[0].text == plain.tokenizer.decode(ids, skip_special_tokens=False)
    finally:
        s.stop()
