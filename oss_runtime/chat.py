"""Harmony chat generation: prompt through the checkpoint's chat template, parse the channels.

The prompt is rendered by ``tokenizer.apply_chat_template(messages, add_generation_prompt=True,
reasoning_effort=...)``, so the checkpoint's own template decides the system header. The model
answers in harmony messages::

    <|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>...<|return|>

Decoding stops at ``<|return|>``, ``<|call|>`` or ``<|endoftext|>`` (or after ``max_new_tokens``).
`HarmonyParser` follows the token stream and routes text to its channel; `generate` returns the
``final`` channel's text (and the ``analysis`` channel when asked) or streams the pieces. Decoding
is greedy unless ``temperature > 0``; the KV cache is transformers' ``DynamicCache`` built from the
model config, which keeps only the window on sliding-attention layers.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Union

from oss_runtime.errors import CheckpointError

__all__ = ["STOP_TOKENS", "ChatReply", "HarmonyParser", "Piece", "cache_kwarg", "generate",
           "render_prompt", "sample_tokens"]

STOP_TOKENS = ("<|return|>", "<|call|>", "<|endoftext|>")
Messages = Union[str, Sequence[Mapping[str, Any]]]


@dataclasses.dataclass(frozen=True)
class ChatReply:
    """What `generate(..., return_analysis=True)` returns."""

    text: str  # the final channel
    analysis: str
    finish_reason: str  # "stop" (a stop token), "call" (<|call|>), or "length"
    token_ids: tuple[int, ...]

    def __str__(self) -> str:
        return self.text


class Piece(NamedTuple):
    """A piece of a harmony message: its channel, text, recipient (``functions.get_weather`` for
    a tool call, else None) and the message's number in the reply (0, 1, ...)."""

    channel: str
    text: str
    recipient: str | None
    message: int


_RECIPIENT = re.compile(r"to=([^\s<]+)")


class HarmonyParser:
    """Feed generated token ids one at a time; get ``(channel, text_piece)`` events back.

    `feed_pieces` / `finish_pieces` give the same events as `Piece` (with the recipient a tool
    call names in its header, ``<|channel|>commentary to=functions.f <|constrain|>json``).
    ``recipient`` and ``messages`` say what the last opened message was addressed to and how
    many were opened."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
               ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", *STOP_TOKENS)}
        unk = getattr(tokenizer, "unk_token_id", None)
        self.ids = {t: i for t, i in ids.items() if i is not None and i != unk}
        self.stops = {self.ids[t]: t for t in STOP_TOKENS if t in self.ids}
        self.header: list[int] = []
        self.content: list[int] = []
        self.channel: str | None = None
        self.in_message = False
        self.seen_message = False
        self.emitted = ""
        self.texts: dict[str, str] = {}
        self.done: str | None = None
        self.recipient: str | None = None
        self.messages = 0

    def _text(self, ids: list[int]) -> str:
        return str(self.tok.decode(ids, skip_special_tokens=True))

    def _flush(self, final: bool) -> list[Piece]:
        text = self._text(self.content)
        if not final and text.endswith("\ufffd"):  # a multi-byte character not complete yet
            return []
        piece = text[len(self.emitted) :]
        self.emitted = text
        if not piece:
            return []
        channel = self.channel or "final"
        self.texts[channel] = self.texts.get(channel, "") + piece
        return [Piece(channel, piece, self.recipient, self.messages - 1)]

    def feed(self, token: int) -> list[tuple[str, str]]:
        return [(p.channel, p.text) for p in self.feed_pieces(token)]

    def finish(self) -> list[tuple[str, str]]:
        """End of generation: flush the open message; text without any header counts as final."""
        return [(p.channel, p.text) for p in self.finish_pieces()]

    def feed_pieces(self, token: int) -> list[Piece]:
        if self.done:
            return []
        if token in self.stops:
            self.done = self.stops[token]
            return self.finish_pieces()
        if not self.in_message:
            if token == self.ids.get("<|message|>"):
                header = str(self.tok.decode(self.header, skip_special_tokens=False))
                _, found, rest = header.partition("<|channel|>")
                words = rest.split("<|")[0].split() if found else []
                self.channel = words[0] if words else None
                to = _RECIPIENT.search(header)
                self.recipient = to.group(1) if to else None
                self.messages += 1
                self.in_message = self.seen_message = True
                self.content, self.emitted, self.header = [], "", []
            elif token == self.ids.get("<|start|>"):
                self.header = []
            else:
                self.header.append(token)
            return []
        if token == self.ids.get("<|end|>"):
            out = self._flush(final=True)
            self.in_message, self.channel = False, None
            return out
        self.content.append(token)
        return self._flush(final=False)

    def finish_pieces(self) -> list[Piece]:
        if self.in_message:
            self.in_message = False
            return self._flush(final=True)
        if not self.seen_message and self.header:  # the model never opened a message
            self.content, self.header, self.channel = self.header, [], "final"
            self.messages += 1
            return self._flush(final=True)
        return []


def _messages(prompt: Messages, system: str | None) -> list[dict[str, Any]]:
    msgs = (
        [{"role": "user", "content": prompt}]
        if isinstance(prompt, str)
        else [dict(m) for m in prompt]
    )
    if system is not None:
        msgs.insert(0, {"role": "developer", "content": system})
    return msgs


def render_prompt(tokenizer: Any, prompt: Messages, *, reasoning_effort: str = "medium",
                  system: str | None = None,
                  tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]:
    """Token ids of the harmony prompt, ending with the assistant's turn header.

    ``tools`` (OpenAI function definitions) go to the template, which renders them as the
    ``functions`` namespace of the developer message."""
    if tokenizer is None:
        raise CheckpointError(
            "this checkpoint directory has no tokenizer (tokenizer.json / tokenizer_config.json); "
            "use rt.model with your own token ids, or add the tokenizer files."
        )
    if not getattr(tokenizer, "chat_template", None):
        raise CheckpointError(
            "the tokenizer has no chat template (chat_template.jinja); cannot render harmony."
        )
    if reasoning_effort not in ("low", "medium", "high"):
        raise ValueError(
            f"reasoning_effort must be 'low', 'medium' or 'high', got {reasoning_effort!r}"
        )
    extra: dict[str, Any] = {"tools": list(tools)} if tools else {}
    out = tokenizer.apply_chat_template(_messages(prompt, system), add_generation_prompt=True,
                                        tokenize=True, reasoning_effort=reasoning_effort, **extra)
    if isinstance(out, Mapping) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    return [int(i) for i in out]


def cache_kwarg(model: Any) -> str:
    """The name transformers' forward takes the KV cache by (``cache`` in 5.x, else the old one)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def sample_tokens(model: Any, prompt_ids: list[int], max_new_tokens: int, stops: set[int],
                  temperature: float = 0.0, seed: int | None = 0,
                  top_p: float = 1.0) -> Generator[int, None, None]:
    """Generated token ids, one per forward pass, ending after a stop token or the limit.

    Greedy at ``temperature == 0``; otherwise sampled from ``softmax(logits / temperature)``,
    cut to the smallest set of tokens whose probability reaches ``top_p`` (nucleus sampling),
    with a generator seeded by ``seed``. Closing the iterator stops at the next token."""
    import torch
    from transformers import DynamicCache

    device = next(p for p in model.parameters() if not p.is_meta).device
    ids = torch.tensor([prompt_ids], device=device)
    cache = DynamicCache(config=model.config)
    key = cache_kwarg(model)
    gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            logits = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{key: cache}).logits
            last = logits[0, -1].float()
            if temperature > 0:
                probs = torch.softmax(last.cpu() / temperature, -1)
                if top_p < 1.0:
                    sorted_p, order = torch.sort(probs, descending=True)
                    keep = torch.cumsum(sorted_p, 0) - sorted_p < top_p  # always the first
                    probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_p[keep])
                nxt = int(torch.multinomial(probs, 1, generator=gen))
            else:
                nxt = int(last.argmax())
            yield nxt
            if nxt in stops:
                return
            ids = torch.tensor([[nxt]], device=device)


def generate(model: Any, tokenizer: Any, prompt: Messages, *, max_new_tokens: int = 256,
             stream: bool = False, reasoning_effort: str = "medium", return_analysis: bool = False,
             system: str | None = None, temperature: float = 0.0, seed: int | None = 0) -> Any:
    """Text of the final channel (``ChatReply`` with ``return_analysis``), or a stream of pieces.

    With ``stream=True`` the result is an iterator of final-channel text pieces, or of
    ``(channel, piece)`` tuples when ``return_analysis`` is set.
    """
    prompt_ids = render_prompt(tokenizer, prompt, reasoning_effort=reasoning_effort, system=system)
    parser = HarmonyParser(tokenizer)
    stops = set(parser.stops)

    def events() -> Iterator[tuple[str, str]]:
        for token in sample_tokens(model, prompt_ids, max_new_tokens, stops, temperature, seed):
            generated.append(token)
            yield from parser.feed(token)
        yield from parser.finish()

    generated: list[int] = []
    if stream:
        if return_analysis:
            return events()
        return (piece for channel, piece in events() if channel == "final")
    for _ in events():
        pass
    if not return_analysis:
        return parser.texts.get("final", "")
    reason = {"<|call|>": "call", None: "length"}.get(parser.done, "stop")
    return ChatReply(parser.texts.get("final", ""), parser.texts.get("analysis", ""), reason,
                     tuple(generated))
