"""A real tiny gpt-oss checkpoint whose greedy answers are known: it 'says' scripted harmony.

Nothing is mocked: the checkpoint is a normal tiny gpt-oss (2 layers, MXFP4 experts) loaded by
`load_gpt_oss_20b`, and the runtime really computes every token. Its weights are chosen so that:

* every layer's MLP and layer 0's attention add nothing (zero down projections, zero o_proj);
* layer 1 (full attention) has one head that acts as a priority latch: its keys are large only
  for a few *marker* tokens, so it attends to the highest-priority marker in the context and
  writes that marker's "state" into a few spare hidden dimensions;
* each scripted token has its own hidden dimension, so the last hidden state is (token, state),
  and ``lm_head`` maps that pair to the next token of a script.

Scripts, chosen by the markers in the prompt (tools rendered: ``namespace``; a tool result:
``to=assistant``; a user asking ``forever``) and by the first reasoning word the model writes
(``Hmm``, ``Weather``), are harmony replies: analysis then final; analysis then a tool call to
``get_weather``; a final answer after the tool result; and an endless ``la la la`` final.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>",
            "<|start|>", "<|end|>", "<|message|>", "<|call|>"]

#: A harmony chat template with tools, tool calls and tool results, in the conventions of
#: gpt-oss's own template (developer instructions, the ``functions`` namespace, one call per
#: assistant message, results from ``functions.NAME to=assistant``).
TEMPLATE = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Reasoning: {{ reasoning_effort | default('medium') }}\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
    "{% if tools %}\nCalls to these tools must go to the commentary channel: 'functions'."
    "{% endif %}<|end|>"
    "{% if messages and messages[0]['role'] in ('system', 'developer') %}"
    "{% set dev = messages[0]['content'] %}{% set rest = messages[1:] %}"
    "{% else %}{% set dev = '' %}{% set rest = messages %}{% endif %}"
    "{% if dev or tools %}<|start|>developer<|message|>"
    "{% if dev %}# Instructions\n\n{{ dev }}{% endif %}"
    "{% if tools %}\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n"
    "{% for t in tools %}// {{ t['function']['description'] }}\ntype {{ t['function']['name'] }}"
    " = (_: {{ t['function']['parameters'] | tojson }}) => any;\n\n{% endfor %}"
    "} // namespace functions{% endif %}<|end|>{% endif %}"
    "{% set last = namespace(name=none) %}"
    "{% for m in rest %}"
    "{% if m['role'] == 'assistant' and m.get('tool_calls') %}"
    "{% set call = m['tool_calls'][0]['function'] %}"
    "{% if m.get('thinking') %}<|start|>assistant<|channel|>analysis<|message|>"
    "{{ m['thinking'] }}<|end|>{% endif %}"
    "<|start|>assistant to=functions.{{ call['name'] }}<|channel|>commentary json<|message|>"
    "{{ call['arguments'] | tojson }}<|call|>{% set last.name = call['name'] %}"
    "{% elif m['role'] == 'assistant' %}"
    "<|start|>assistant<|channel|>final<|message|>{{ m['content'] }}<|end|>"
    "{% elif m['role'] == 'tool' %}"
    "{% if last.name is none %}{{ raise_exception('a tool result without a tool call') }}{% endif %}"
    "<|start|>functions.{{ last.name }} to=assistant<|channel|>commentary<|message|>"
    "{{ m['content'] | tojson }}<|end|>"
    "{% else %}<|start|>{{ m['role'] }}<|message|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant{% endif %}"
)

#: marker token -> priority (the latch keeps the highest one in the context)
MARKERS = {"namespace": 1, "Hmm": 2, "Weather": 3, "to=assistant": 4, "forever": 5}

REASONING = "Hmm, the user says hello."
FINAL = "Hello world! The sky is blue"
TOOL_REASONING = "Weather lookup needed"
TOOL_ARGS = '{"city":"Paris"}'
AFTER_TOOL = "It is sunny in Paris."

#: (state the prompt puts the latch in, the reply the model writes)
SCRIPTS = [
    (None, f"<|channel|>analysis<|message|>{REASONING}<|end|><|start|>assistant<|channel|>final"
           f"<|message|>{FINAL}<|return|>"),
    ("namespace", f"<|channel|>analysis<|message|>{TOOL_REASONING}<|end|><|start|>assistant"
                  "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
                  f"{TOOL_ARGS}<|call|>"),
    ("to=assistant", f"<|channel|>final<|message|>{AFTER_TOOL}<|return|>"),
    ("forever", "<|channel|>final<|message|>" + " la" * 6),
]

CORPUS = [REASONING, FINAL, TOOL_REASONING, TOOL_ARGS, AFTER_TOOL, " la la la la",
          "You are ChatGPT, a large language model trained by OpenAI. Reasoning: medium low high",
          "Valid channels: analysis, commentary, final. Channel must be included for every message",
          "Calls to these tools must go to the commentary channel: functions get_weather city",
          "what is the weather in Paris? say hello, tell me a story forever, assistant developer",
          # header words as the model writes them, right after a special token (no space)
          "analysis", "final", "commentary", "assistant", "json", "to=functions.get_weather"]


def write_tokenizer(directory: Path) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|return|>",
                                   pad_token="<|endoftext|>", bos_token="<|startoftext|>")
    fast.add_tokens(list(MARKERS))
    fast.chat_template = TEMPLATE
    fast.save_pretrained(str(directory))
    return fast


def _transitions(tok: Any) -> dict[tuple[int, str | None], int]:
    """(current token, latch state) -> next token, over every script; conflicts raise."""
    ids = {m: tok.convert_tokens_to_ids(m) for m in MARKERS}
    marker_of = {i: m for m, i in ids.items()}
    start = tok.convert_tokens_to_ids("assistant")
    table: dict[tuple[int, str | None], int] = {}
    for state, text in SCRIPTS:
        seq = [start, *tok(text, add_special_tokens=False)["input_ids"]]
        if state == "forever":
            seq.append(seq[-1])  # " la" follows " la"
        for cur, nxt in zip(seq, seq[1:]):
            if cur in marker_of and (state is None or MARKERS[marker_of[cur]] > MARKERS[state]):
                state = marker_of[cur]
            key = (cur, state)
            if table.get(key, nxt) != nxt:
                raise AssertionError(f"script conflict at {tok.decode([cur])!r} in {state}")
            table[key] = nxt
    return table


def write_scripted_checkpoint(directory: Path) -> Path:
    """The checkpoint (with tokenizer) described in the module docstring."""
    import torch

    from oss_runtime.layout import expected_tensors
    from oss_runtime.spec import spec_from_config
    from oss_runtime.synth import synth_config, write_safetensors

    directory.mkdir(parents=True, exist_ok=True)
    tok = write_tokenizer(directory)
    config = synth_config("tiny", vocab_size=1024)
    hidden, vocab, head_dim = config["hidden_size"], config["vocab_size"], config["head_dim"]
    assert len(tok) <= vocab
    table = _transitions(tok)
    tokens = sorted({t for key in table for t in (key[0], table[key])} |
                    {tok.convert_tokens_to_ids(m) for m in MARKERS})
    states = list(MARKERS)
    base = hidden - len(states)  # the state dimensions come last
    assert len(tokens) <= base, f"{len(tokens)} scripted tokens do not fit in {base} dims"
    dim = {t: i for i, t in enumerate(tokens)}
    w: dict[str, Any] = {}
    w["model.embed_tokens.weight"] = emb = torch.zeros(vocab, hidden)
    for t, i in dim.items():
        emb[t, i] = 1.0
    p = "model.layers.1."
    w[p + "input_layernorm.weight"] = torch.ones(hidden)
    w["model.norm.weight"] = torch.ones(hidden)
    lane = head_dim // 2 - 1  # the slowest rotary pair: position barely rotates it
    w[p + "self_attn.q_proj.bias"] = qb = torch.zeros(config["num_attention_heads"] * head_dim)
    qb[lane] = 1.0
    kv = config["num_key_value_heads"] * head_dim
    w[p + "self_attn.k_proj.weight"] = wk = torch.zeros(kv, hidden)
    w[p + "self_attn.v_proj.weight"] = wv = torch.zeros(kv, hidden)
    w[p + "self_attn.o_proj.weight"] = wo = torch.zeros(hidden, config["num_attention_heads"]
                                                        * head_dim)
    for s, marker in enumerate(states):
        t = tok.convert_tokens_to_ids(marker)
        wk[lane, dim[t]] = 3.0 * MARKERS[marker]  # score ~ 11 per priority step
        wv[s, dim[t]] = 1.0
        wo[base + s, s] = 0.125  # the normed value is 8: the state lands with weight 1
    w["lm_head.weight"] = lm = torch.zeros(vocab, hidden)
    by_token: dict[int, dict[str | None, int]] = {}
    for (cur, state), nxt in table.items():
        by_token.setdefault(cur, {})[state] = nxt
    for cur, choices in by_token.items():
        counts = list(choices.values())
        # no state (nothing latched) cannot add to a logit: its successor is the default
        default = choices.get(None, max(set(counts), key=counts.count))
        lm[default, dim[cur]] = 1.5
        for state, nxt in choices.items():
            if nxt != default:
                lm[nxt, dim[cur]] = 1.0
                lm[nxt, base + states.index(state)] = 1.0
    for (cur, state), nxt in table.items():  # the readout picks each script's next token
        h = torch.zeros(hidden)
        h[dim[cur]] = 1.0
        if state is not None:
            h[base + states.index(state)] = 1.0
        top = torch.topk(lm @ h, 2)
        assert int(top.indices[0]) == nxt and float(top.values[0] - top.values[1]) > 0.2, \
            (tok.decode([cur]), state)
    spec = spec_from_config(config)
    entries, chunks = [], {}
    for t in expected_tensors(spec).values():
        dtype = "U8" if t.dtype == "U8" else "BF16"
        entries.append((t.name, dtype, t.shape))
        if t.name in w:
            value = w.pop(t.name).to(torch.bfloat16).contiguous()
            assert tuple(value.shape) == tuple(t.shape), t.name
            chunks[t.name] = iter([value.view(torch.int16).numpy().tobytes()])
    assert not w, f"unknown tensors {sorted(w)}"
    write_safetensors(directory / "model.safetensors", entries, chunks)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory
