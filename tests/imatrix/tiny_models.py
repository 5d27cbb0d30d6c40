"""Tiny random causal LMs built from transformers configs, and the imatrix entries their GGUF conversion would have.

The expected entries are derived independently of imatrix.model.naming: from gguf's MODEL_TENSORS table for the arch (which
matmul tensors a block of that arch has) and from the config (dims, which layers are MoE).
"""

from __future__ import annotations

import torch
from gguf import MODEL_ARCH, MODEL_TENSOR, MODEL_TENSORS, TENSOR_NAMES

HIDDEN, FFN, HEADS, KV_HEADS, HEAD_DIM, VOCAB, BLOCKS = 64, 96, 4, 2, 16, 320, 2
EXPERTS, TOP_K, MOE_FFN = 4, 2, 32


def _common() -> dict:
    return dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=BLOCKS,
                num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, bos_token_id=1,
                eos_token_id=2, pad_token_id=0)


def build(family: str, seed: int = 0):
    """(model in eval mode, gguf arch) for llama, qwen3, qwen3-moe, mixtral, gemma3, gemma4."""
    import transformers as tf

    torch.manual_seed(seed)
    if family == "llama":
        model, arch = tf.LlamaForCausalLM(tf.LlamaConfig(**_common())), MODEL_ARCH.LLAMA
    elif family == "qwen3":
        model, arch = tf.Qwen3ForCausalLM(tf.Qwen3Config(**_common())), MODEL_ARCH.QWEN3
    elif family == "qwen3-moe":
        config = tf.Qwen3MoeConfig(**_common(), num_experts=EXPERTS, num_experts_per_tok=TOP_K,
                                   moe_intermediate_size=MOE_FFN, decoder_sparse_step=1, mlp_only_layers=[])
        model, arch = tf.Qwen3MoeForCausalLM(config), MODEL_ARCH.QWEN3MOE
    elif family == "mixtral":
        config = tf.MixtralConfig(**_common(), num_local_experts=EXPERTS, num_experts_per_tok=TOP_K)
        model, arch = tf.MixtralForCausalLM(config), MODEL_ARCH.LLAMA
    elif family == "gemma3":
        config = tf.Gemma3TextConfig(**_common(), sliding_window=8, layer_types=["sliding_attention", "full_attention"])
        model, arch = tf.Gemma3ForCausalLM(config), MODEL_ARCH.GEMMA3
    elif family == "gemma4":
        config = tf.Gemma4TextConfig(
            **_common(), global_head_dim=32, hidden_size_per_layer_input=8, vocab_size_per_layer_input=VOCAB,
            layer_types=["sliding_attention", "full_attention"], sliding_window=8, num_kv_shared_layers=0,
            enable_moe_block=True, num_experts=EXPERTS, top_k_experts=TOP_K, moe_intermediate_size=MOE_FFN)
        model, arch = tf.Gemma4ForCausalLM(config), MODEL_ARCH.GEMMA4
    else:
        raise ValueError(family)
    with torch.no_grad():  # random norms so that every path carries signal
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:
                parameter.normal_(0.0, 0.2).add_(1.0 if "norm" in name else 0.0)
    return model.eval(), arch


def _head_dim(config, layer: int) -> int:
    values = config.to_dict()  # gemma4 keeps per-layer overrides (global_head_dim) in per_layer_config
    return values.get("per_layer_config", {}).get(str(layer), {}).get("head_dim", values["head_dim"])


def expected_entries(model, arch: MODEL_ARCH) -> dict[str, int]:
    """GGUF key → ne0 × n_expert for every matmul weight a block of this arch/config has."""
    config = model.config
    kinds = set(MODEL_TENSORS[arch])
    n_expert = getattr(config, "num_experts", None) or getattr(config, "num_local_experts", None)
    is_moe = bool(n_expert) and (config.model_type != "gemma4_text" or config.enable_moe_block)
    entries: dict[MODEL_TENSOR, int] = {}
    per_layer = []
    for layer in range(config.num_hidden_layers):
        entries = {MODEL_TENSOR.ATTN_Q: config.hidden_size, MODEL_TENSOR.ATTN_K: config.hidden_size,
                   MODEL_TENSOR.ATTN_V: config.hidden_size,
                   MODEL_TENSOR.ATTN_OUT: config.num_attention_heads * _head_dim(config, layer)}
        dense_ffn = not is_moe or config.model_type == "gemma4_text"
        if dense_ffn:
            entries.update({MODEL_TENSOR.FFN_GATE: config.hidden_size, MODEL_TENSOR.FFN_UP: config.hidden_size,
                            MODEL_TENSOR.FFN_DOWN: config.intermediate_size})
        if is_moe:
            moe_ffn = getattr(config, "moe_intermediate_size", None) or config.intermediate_size
            entries[MODEL_TENSOR.FFN_GATE_INP] = config.hidden_size
            if MODEL_TENSOR.FFN_GATE_EXP in kinds:
                entries[MODEL_TENSOR.FFN_GATE_EXP] = entries[MODEL_TENSOR.FFN_UP_EXP] = config.hidden_size * n_expert
            else:
                entries[MODEL_TENSOR.FFN_GATE_UP_EXP] = config.hidden_size * n_expert
            entries[MODEL_TENSOR.FFN_DOWN_EXP] = moe_ffn * n_expert
        if getattr(config, "hidden_size_per_layer_input", 0):
            entries[MODEL_TENSOR.PER_LAYER_INP_GATE] = config.hidden_size
            entries[MODEL_TENSOR.PER_LAYER_PROJ] = config.hidden_size_per_layer_input
        assert set(entries) <= kinds, f"{arch.name} lacks {set(entries) - kinds}"
        per_layer.append({TENSOR_NAMES[k].format(bid=layer) + ".weight": n for k, n in entries.items()})
    return {key: n for layer in per_layer for key, n in layer.items()}


FAMILIES = ("llama", "qwen3", "qwen3-moe", "mixtral", "gemma3", "gemma4")
