"""Render sessions through tiny in-test tokenizers and the plain fallback; the real Gemma GGUF is slow-marked."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from logminer.rendering.chat import RenderError, adapt_messages, count_tokens, render_plain, render_session, to_messages
from logminer.schema import Session, ToolCall, Turn

TOOL_TEMPLATE = (
    "{% if tools %}TOOLS {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}"
    "<{{ m.role }}>{% if m.reasoning_content %}[think {{ m.reasoning_content }}]{% endif %}{{ m.content }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %} CALL {{ c.function.name }} {{ c.function.arguments | tojson }}"
    "{% endfor %}{% endif %}"
    "{% if m.role == 'tool' %} FOR {{ m.tool_call_id }} {{ m.name }}{% endif %}</{{ m.role }}>\n"
    "{% endfor %}"
)
STRICT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('Conversation roles must be user/assistant') }}"
    "{% endif %}"
    "{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n"
    "{% endfor %}"
)
TOOLS = [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}}}]


def tiny_tokenizer(template: str | None):
    from transformers import PreTrainedTokenizerFast

    words = "hello list the files a b ok done thinking".split()
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=template, unk_token="[UNK]")


def sample_session() -> Session:
    return Session(
        session_id="s1", agent="test", source_file="f.jsonl", tools=TOOLS,
        turns=[
            Turn("system", "be brief"),
            Turn("user", "list the files"),
            Turn("assistant", "ok", reasoning="thinking hard",
                 tool_calls=[ToolCall("ls", json.dumps({"path": "."}), id="c1")]),
            Turn("tool", "a b", tool_call_id="c1", name="ls"),
            Turn("assistant", "done"),
        ],
    )


def test_messages_use_openai_tool_call_form():
    messages = to_messages(sample_session())
    assert messages[2]["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": {"path": "."}}}
    ]
    assert messages[3] == {"role": "tool", "content": "a b", "tool_call_id": "c1", "name": "ls"}
    assert "reasoning_content" not in messages[2]


def test_chat_template_renders_tools_calls_and_results():
    text = render_session(sample_session(), tiny_tokenizer(TOOL_TEMPLATE))
    assert text == (
        'TOOLS [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}}}]\n'
        "<system>be brief</system>\n<user>list the files</user>\n"
        '<assistant>ok CALL ls {"path": "."}</assistant>\n<tool>a b FOR c1 ls</tool>\n<assistant>done</assistant>\n'
    )


def test_reasoning_only_when_asked():
    tokenizer = tiny_tokenizer(TOOL_TEMPLATE)
    assert "thinking hard" not in render_session(sample_session(), tokenizer)
    assert "[think thinking hard]ok" in render_session(sample_session(), tokenizer, include_reasoning=True)
    assert "<think>thinking hard</think>" in render_plain(sample_session(), include_reasoning=True)


def test_strict_template_gets_adapted_messages():
    text = render_session(sample_session(), tiny_tokenizer(STRICT_TEMPLATE))
    assert text == (
        "<start_of_turn>user\nbe brief\n\nlist the files<end_of_turn>\n"
        '<start_of_turn>assistant\nok\n<tool_call>{"name": "ls", "arguments": {"path": "."}}</tool_call><end_of_turn>\n'
        "<start_of_turn>user\n[tool result: ls]\na b<end_of_turn>\n"
        "<start_of_turn>assistant\ndone<end_of_turn>\n"
    )


def test_unrenderable_session_raises_render_error_with_reason():
    session = Session("s2", "test", "f.jsonl", turns=[Turn("assistant", "a"), Turn("assistant", "b")])
    # adaptation joins the two assistant turns, but the template still wants a user turn first
    with pytest.raises(RenderError, match="alternate"):
        render_session(session, tiny_tokenizer(STRICT_TEMPLATE))


def test_adapt_joins_consecutive_tool_results():
    messages = [{"role": "tool", "content": "x", "name": "a"}, {"role": "tool", "content": "y", "name": "b"}]
    assert adapt_messages(messages) == [{"role": "user", "content": "[tool result: a]\nx\n\n[tool result: b]\ny"}]


def test_plain_fallback_matches_documented_layout():
    expected = (
        "<|tools|>\n" + json.dumps(TOOLS[0], sort_keys=True) + "\n"
        "<|system|>\nbe brief\n<|user|>\nlist the files\n"
        '<|assistant|>\nok\n<tool_call>{"name": "ls", "arguments": {"path": "."}}</tool_call>\n'
        "<|tool|> ls\na b\n<|assistant|>\ndone\n"
    )
    assert render_session(sample_session()) == expected
    assert render_session(sample_session(), tiny_tokenizer(None)) == expected  # no template → fallback


def test_count_tokens_batched_matches_single_encodes():
    tokenizer = tiny_tokenizer(TOOL_TEMPLATE)
    texts = ["hello list the files", "a b zzz", ""]
    assert count_tokens(texts, tokenizer) == [4, 3, 0]
    assert count_tokens(texts, tokenizer.backend_tokenizer) == [4, 3, 0]
    assert count_tokens(["a, b!", "", "é" * 4]) == [2, 0, 2]  # fallback: ceil(UTF-8 bytes / 4)


@pytest.mark.slow
def test_real_gemma_gguf_tokenizer_counts_and_renders():
    from imatrix.model.default_model import default_model_gguf
    from logminer.rendering.chat import has_chat_template, load_tokenizer

    tokenizer = load_tokenizer(default_model_gguf())
    text = render_session(sample_session(), tokenizer)
    if has_chat_template(tokenizer):  # a GGUF with tokenizer.chat_template metadata
        assert "list the files" in text and "<start_of_turn>" in text
    else:  # this GGUF carries no chat template: the documented plain fallback
        assert text == render_plain(sample_session())
    expected_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert count_tokens([text], tokenizer) == [len(expected_ids)] and len(expected_ids) > 20


@pytest.mark.parametrize("family", ["chatml", "gemma"])
def test_bundled_templates_keep_tool_calls_in_the_text(family):
    """The bundled templates never read `tool_calls`: the calls must still reach the text, as <tool_call> lines
    (also in a session with no tool-role turn, where Gemma needs no role adaptation)."""
    from logminer.rendering.templates import TEMPLATES_BY_NAME

    session = sample_session()
    no_tool_turn = Session(session_id="s2", agent="test", source_file="f.jsonl",
                           turns=[Turn("user", "list the files"),
                                  Turn("assistant", "ok", tool_calls=[ToolCall("ls", json.dumps({"path": "."}))])])
    for case in (session, no_tool_turn):
        text = render_session(case, tiny_tokenizer(TEMPLATES_BY_NAME[family]))
        assert '<tool_call>{"name": "ls", "arguments": {"path": "."}}</tool_call>' in text, (family, text)
