"""Tokenizers without a chat template get the bundled template of their family, found by turn-marker tokens."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from logminer.rendering.chat import RenderError, attach_chat_template, render_session
from tests.logminer.rendering.test_chat import sample_session


def marker_tokenizer(*markers: str):
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{m: i + 1 for i, m in enumerate(markers)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


def test_gemma_markers_give_gemma_turns_with_system_tools_and_results_folded_into_user_turns():
    tokenizer = marker_tokenizer("<start_of_turn>", "<end_of_turn>")
    assert attach_chat_template(tokenizer) == "gemma"
    text = render_session(sample_session(), tokenizer)
    assert text == (
        "<start_of_turn>user\nAvailable tools:\n"
        '{"type": "function", "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}}}\n\n'
        "be brief\n\nlist the files<end_of_turn>\n"
        '<start_of_turn>model\nok\n<tool_call>{"name": "ls", "arguments": {"path": "."}}</tool_call><end_of_turn>\n'
        "<start_of_turn>user\n[tool result: ls]\na b<end_of_turn>\n"
        "<start_of_turn>model\ndone<end_of_turn>\n"
    )
    assert "<bos>" not in text  # the chunker adds BOS itself


def test_chatml_markers_and_unknown_vocabulary():
    chatml = marker_tokenizer("<|im_start|>", "<|im_end|>")
    assert attach_chat_template(chatml) == "chatml"
    assert render_session(sample_session(), chatml).count("<|im_start|>tool\n") == 1
    plain = marker_tokenizer("hello")
    assert attach_chat_template(plain) is None and not plain.chat_template


def test_explicit_template_name_file_and_error(tmp_path):
    tokenizer = marker_tokenizer("hello")
    assert attach_chat_template(tokenizer, "chatml") == "chatml"
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}[{{ m.role }}]{% endfor %}")
    assert attach_chat_template(tokenizer, str(template)) == str(template)
    assert render_session(sample_session(), tokenizer) == "[system][user][assistant][tool][assistant]"
    with pytest.raises(RenderError, match="neither a bundled template"):
        attach_chat_template(tokenizer, str(tmp_path / "missing.jinja"))


@pytest.mark.slow
def test_default_gemma_gguf_renders_with_gemma_turns():
    from imatrix.model.default_model import default_model_gguf
    from logminer.rendering.chat import load_tokenizer

    tokenizer = load_tokenizer(default_model_gguf())
    text = render_session(sample_session(), tokenizer)
    assert text.startswith("<start_of_turn>user\n") and text.endswith("<start_of_turn>model\ndone<end_of_turn>\n")
