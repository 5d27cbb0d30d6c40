"""preflight refuses an architecture the converter does not convert, or one refused on purpose, from config.json
alone (no weights), and passes a model it can name."""

from __future__ import annotations

import pytest
from gguf import MODEL_ARCH

from imatrix.collect.preflight import preflight
from imatrix.model import converter_rules
from imatrix.model.naming import NamingError
from tests.imatrix.tiny_models import build


def test_unconvertible_or_unmappable_models_are_refused_before_loading(tmp_path, monkeypatch):
    """preflight names the architecture (or the module) and what to do, from config.json alone."""
    import transformers as tf

    opt = tmp_path / "opt"
    tf.OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2, vocab_size=64,
                 word_embed_proj_dim=16).save_pretrained(opt)  # a config only: no weights exist to be read
    with pytest.raises(NamingError, match="opt.*does not convert it"):
        preflight(opt, False, False, False, False)
    llama = tmp_path / "llama"
    build("llama")[0].config.save_pretrained(llama)
    assert preflight(llama, False, False, False, False) == []
    monkeypatch.setitem(converter_rules.REFUSED, MODEL_ARCH.LLAMA, "no way; use llama-imatrix")
    with pytest.raises(NamingError, match="no way; use llama-imatrix"):
        preflight(llama, False, False, False, False)
