"""Harmony generation: the channel parser, stop tokens, streaming, determinism vs transformers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="generation needs torch")

from _oss_tokenizer import write_tokenizer  # noqa: E402

from oss_runtime import load_gpt_oss_20b  # noqa: E402
from oss_runtime.api import load_tokenizer  # noqa: E402
from oss_runtime.chat import STOP_TOKENS, ChatReply, HarmonyParser, generate, render_prompt  # noqa: E402
from oss_runtime.environment import Environment  # noqa: E402
from oss_runtime.synth import synth_config, write_checkpoint  # noqa: E402

CPU = Environment(cpu_count=2, total_ram=16 * 1024**3, available_ram=14 * 1024**3)
ANSWER = ("<|channel|>analysis<|message|>the sky scatters<|end|><|start|>assistant"
          "<|channel|>final<|message|>hello world<|return|>")


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_checkpoint(tmp_path_factory.mktemp("gen") / "ck", synth_config("tiny"), shards=1)
    return write_tokenizer(root)


@pytest.fixture(scope="module")
def rt(ck: Path) -> Any:
    return load_gpt_oss_20b(ck, progress=False, environment=CPU, dtype="float32")


def test_prompt_uses_the_checkpoint_template(rt: Any) -> None:
    text = rt.tokenizer.decode(render_prompt(rt.tokenizer, "hello world", reasoning_effort="high"))
    assert text.startswith("<|start|>system<|message|>") and "Reasoning: high" in text
    assert text.endswith("<|start|>user<|message|>hello world<|end|><|start|>assistant")
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}]
    text = rt.tokenizer.decode(render_prompt(rt.tokenizer, msgs, system="be brief"))
    assert (
        "<|start|>developer<|message|>be brief<|end|>" in text
        and "final<|message|>b<|end|>" in text
    )
    with pytest.raises(ValueError, match="reasoning_effort"):
        render_prompt(rt.tokenizer, "x", reasoning_effort="max")


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


def test_parser_channels_and_stops(rt: Any) -> None:
    tok = rt.tokenizer
    p = HarmonyParser(tok)
    events = [e for t in _ids(tok, ANSWER) for e in p.feed(t)]
    assert "".join(x for c, x in events if c == "analysis") == "the sky scatters"
    assert "".join(x for c, x in events if c == "final") == "hello world"
    assert p.done == "<|return|>" and p.feed(5) == []
    call = HarmonyParser(tok)
    for t in _ids(tok, "<|channel|>commentary to=functions.x<|message|>{}<|call|>"):
        call.feed(t)
    assert call.done == "<|call|>" and call.texts == {"commentary": "{}"}
    odd = HarmonyParser(tok)  # a header with no channel name: its text counts as final
    for t in _ids(tok, "<|channel|><|constrain|>json<|message|>ok<|end|>"):
        odd.feed(t)
    assert odd.texts == {"final": "ok"}
    bare = HarmonyParser(tok)  # a model that never opens a message: its text counts as final
    for t in _ids(tok, "hello"):
        bare.feed(t)
    assert bare.finish() and bare.texts == {"final": "hello"}
    assert set(STOP_TOKENS) <= set(HarmonyParser(tok).ids)


class Scripted(torch.nn.Module):
    """A 'model' that answers with a fixed token script (to test generate's plumbing)."""

    def __init__(self, config: Any, script: list[int], vocab: int) -> None:
        super().__init__()
        self.config, self.script, self.vocab, self.calls = config, script, vocab, 0
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: Any, cache: Any = None, use_cache: bool = True,
                logits_to_keep: int = 0) -> Any:
        logits = torch.full((1, 1, self.vocab), -1e9)
        logits[0, 0, self.script[min(self.calls, len(self.script) - 1)]] = 0
        self.calls += 1
        return type("Out", (), {"logits": logits})()


def test_generate_final_analysis_stream(rt: Any) -> None:
    tok = rt.tokenizer
    script = _ids(tok, ANSWER) + [0] * 5
    model = Scripted(rt.model.config, script, 512)
    assert generate(model, tok, "hi", max_new_tokens=64) == "hello world"
    model.calls = 0
    reply = generate(model, tok, "hi", max_new_tokens=64, return_analysis=True)
    assert isinstance(reply, ChatReply) and str(reply) == "hello world"
    assert (reply.analysis, reply.finish_reason) == ("the sky scatters", "stop")
    assert list(reply.token_ids) == _ids(tok, ANSWER)  # stopped at <|return|>
    model.calls = 0
    pieces = generate(model, tok, "hi", max_new_tokens=64, stream=True)
    assert isinstance(pieces, Iterator)
    got = list(pieces)
    assert len(got) > 1 and "".join(got) == "hello world"
    model.calls = 0
    both = list(generate(model, tok, "hi", max_new_tokens=64, stream=True, return_analysis=True))
    assert {c for c, _ in both} == {"analysis", "final"}
    model.calls = 0
    cut = generate(model, tok, "hi", max_new_tokens=3, return_analysis=True)
    assert cut.finish_reason == "length" and len(cut.token_ids) == 3


def test_deterministic_and_equal_to_transformers_generate(rt: Any) -> None:
    a = rt.generate("Why is the sky blue?", max_new_tokens=12, return_analysis=True)
    b = rt.generate("Why is the sky blue?", max_new_tokens=12, return_analysis=True)
    assert a == b and len(a.token_ids) >= 1
    prompt = render_prompt(rt.tokenizer, "Why is the sky blue?")
    stops = [rt.tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS]
    out = rt.model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                            eos_token_id=stops, pad_token_id=stops[-1])
    assert list(a.token_ids) == out[0, len(prompt) :].tolist()
    assert "".join(rt.generate("Why is the sky blue?", max_new_tokens=12, stream=True)) == a.text
    sampled = rt.generate("Why is the sky blue?", max_new_tokens=8, temperature=1.0, seed=1,
                          return_analysis=True)
    assert sampled == rt.generate("Why is the sky blue?", max_new_tokens=8, temperature=1.0, seed=1,
                                  return_analysis=True)


def test_sliding_layers_keep_a_bounded_cache(rt: Any) -> None:
    from transformers import DynamicCache

    cache = DynamicCache(config=rt.model.config)
    ids = torch.randint(0, 400, (1, 30))
    with torch.inference_mode():
        rt.model(input_ids=ids, use_cache=True, logits_to_keep=1, cache=cache)
    window = rt.model.config.sliding_window
    kinds = rt.model.config.layer_types
    lengths = [layer.keys.shape[-2] for layer in cache.layers]
    assert all(n <= window for n, k in zip(lengths, kinds) if k == "sliding_attention")
    assert all(n == 30 for n, k in zip(lengths, kinds) if k == "full_attention")


def test_load_tokenizer_none(tmp_path: Path) -> None:
    assert load_tokenizer(tmp_path) is None
