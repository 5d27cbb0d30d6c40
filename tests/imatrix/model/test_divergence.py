"""Configs whose transformers forward llama.cpp does not reproduce are named (one warning each); published configs
give none."""

from __future__ import annotations

from gguf import MODEL_ARCH

from imatrix.model.divergence import divergence_warnings


def test_configs_llama_cpp_does_not_reproduce_are_named():
    import transformers as tf

    published = tf.Qwen3MoeConfig(norm_topk_prob=True)
    assert divergence_warnings(MODEL_ARCH.QWEN3MOE, published) == []
    [message] = divergence_warnings(MODEL_ARCH.QWEN3MOE, tf.Qwen3MoeConfig(norm_topk_prob=False))
    assert "norm_topk_prob=False" in message and "always renormalises" in message
    assert divergence_warnings(MODEL_ARCH.QWEN2MOE, tf.Qwen2MoeConfig(norm_topk_prob=False)) == []
    gemma = dict(hidden_size=256, num_attention_heads=4, head_dim=64, num_hidden_layers=2)
    assert divergence_warnings(MODEL_ARCH.GEMMA3, tf.Gemma3TextConfig(**gemma, query_pre_attn_scalar=64)) == []
    [message] = divergence_warnings(MODEL_ARCH.GEMMA3, tf.Gemma3TextConfig(**gemma, query_pre_attn_scalar=128))
    assert "1/sqrt(64)" in message
    gemma_27b = dict(hidden_size=5376, num_attention_heads=32, head_dim=128, num_hidden_layers=62)
    assert divergence_warnings(MODEL_ARCH.GEMMA3, tf.Gemma3TextConfig(**gemma_27b, query_pre_attn_scalar=168)) == []


def test_gemma3_layer_pattern_llama_cpp_assumes():
    import transformers as tf

    base = dict(hidden_size=256, num_attention_heads=4, head_dim=64, query_pre_attn_scalar=64, sliding_window=64)
    published = ["sliding_attention"] * 5 + ["full_attention"]
    assert divergence_warnings(MODEL_ARCH.GEMMA3, tf.Gemma3TextConfig(**base, num_hidden_layers=6,
                                                                       layer_types=published)) == []
    [message] = divergence_warnings(MODEL_ARCH.GEMMA3, tf.Gemma3TextConfig(
        **base, num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"]))
    assert "every 6th layer full" in message
