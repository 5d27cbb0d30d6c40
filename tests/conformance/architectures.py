"""THE table of the conformance suite: one row per architecture, a tiny transformers config for each.

Dimensions: every matmul input (hidden, heads × head_dim, FFN widths) is a multiple of 256, so llama-quantize can
quantize every tensor to IQ2_XS; two layers, four experts (top 2) for MoE rows, the 320-token character vocabulary.
`moe` rows compare counts within the routing-tie tolerance (tests/conformance/README.md), dense rows exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tests.conformance.tokenizer import VOCAB_SIZE

HIDDEN, FFN, HEADS, KV_HEADS, HEAD_DIM, LAYERS = 256, 512, 4, 2, 64, 2
EXPERTS, TOP_K, MOE_FFN = 4, 2, 256


def common(**extra) -> dict:
    values = dict(vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, bos_token_id=1,
                  eos_token_id=2, pad_token_id=0, max_position_embeddings=1024, tie_word_embeddings=False)
    values.update(extra)
    return values


@dataclass(frozen=True)
class Architecture:
    """A row: `config()` builds the transformers config; `model_class` is the class the checkpoint is saved as."""

    name: str
    model_class: str
    config: Callable[[], object]
    moe: bool = False
    converter_args: tuple[str, ...] = ()  # convert_hf_to_gguf.py options the row needs
    published_config: tuple[tuple[str, object], ...] = ()  # config.json fields as published checkpoints spell them
    diverges: bool = False  # a config llama.cpp does not reproduce: collect must warn, and the values must differ
    llamacpp_aborts: str = ""  # llama.cpp cannot run the converted model: only keys, lengths, energies, quantize
    refused: bool = False  # `imatrix collect` must refuse it before loading (imatrix.model.converter_rules.REFUSED)


def _tf():
    import transformers

    return transformers


def _moe(**extra) -> dict:
    return common(num_experts=EXPERTS, num_experts_per_tok=TOP_K, moe_intermediate_size=MOE_FFN, **extra)


def _gemma3_text(**extra):
    values = {"query_pre_attn_scalar": HEAD_DIM, **extra}
    # both layers sliding: llama.cpp's gemma3 pattern (every 6th layer full) for two layers
    return _tf().Gemma3TextConfig(**common(sliding_window=64, layer_types=["sliding_attention"] * 2, **values))


def _gemma4_text(**extra):
    return _tf().Gemma4TextConfig(**common(
        global_head_dim=128, hidden_size_per_layer_input=256, vocab_size_per_layer_input=VOCAB_SIZE,
        layer_types=["sliding_attention", "full_attention"], sliding_window=64, num_kv_shared_layers=0,
        tie_word_embeddings=True, **extra))


def _gemma4_moe():
    return _gemma4_text(enable_moe_block=True, num_experts=EXPERTS, top_k_experts=TOP_K, moe_intermediate_size=MOE_FFN)


def _gemma4_multimodal():
    tf = _tf()
    vision = tf.Gemma4VisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2, head_dim=32)
    return tf.Gemma4Config(text_config=_gemma4_text().to_dict(), vision_config=vision.to_dict())


def _gemma3_multimodal():
    tf = _tf()
    vision = tf.SiglipVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                   num_attention_heads=2, image_size=32, patch_size=8)
    return tf.Gemma3Config(text_config=_gemma3_text().to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)


def _qwen3_next():
    return _tf().Qwen3NextConfig(**_moe(
        layer_types=["linear_attention", "full_attention"], linear_key_head_dim=64, linear_value_head_dim=64,
        linear_num_key_heads=2, linear_num_value_heads=4, linear_conv_kernel_dim=4, shared_expert_intermediate_size=256,
        decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True))


def _deepseek_v3():
    return _tf().DeepseekV3Config(**common(
        moe_intermediate_size=MOE_FFN, n_routed_experts=EXPERTS, num_experts_per_tok=TOP_K, n_shared_experts=1,
        first_k_dense_replace=1, n_group=1, topk_group=1, kv_lora_rank=256, q_lora_rank=256, qk_rope_head_dim=32,
        qk_nope_head_dim=64, v_head_dim=64, num_key_value_heads=HEADS, head_dim=32))


def _llama4_text():
    return _tf().Llama4TextConfig(**common(
        intermediate_size=MOE_FFN, intermediate_size_mlp=FFN, num_local_experts=EXPERTS, num_experts_per_tok=1,
        interleave_moe_layer_step=2, attention_chunk_size=8192))


def _minimax_m2():
    # scoring_func: the published config.json's field, from which the converter writes the sigmoid gating
    return _tf().MiniMaxM2Config(**_moe(num_local_experts=EXPERTS, rotary_dim=32, use_qk_norm=True,
                                        scoring_func="sigmoid"))


def _granite_hybrid():
    return _tf().GraniteMoeHybridConfig(**common(
        layer_types=["mamba", "attention"], num_local_experts=EXPERTS, num_experts_per_tok=TOP_K,
        shared_intermediate_size=FFN, mamba_n_heads=8, mamba_d_head=64, mamba_d_state=64, mamba_n_groups=1,
        mamba_expand=2, mamba_d_conv=4))


def _qwen25_vl():
    tf = _tf()
    text = tf.Qwen2Config(**common(rope_parameters={"rope_type": "default", "mrope_section": [8, 12, 12],
                                                    "rope_theta": 10000.0})).to_dict()
    text["model_type"] = "qwen2_5_vl_text"
    vision = dict(depth=1, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=HIDDEN, patch_size=8,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=16, fullatt_block_indexes=[0])
    return tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=300, video_token_id=301,
                               vision_start_token_id=302, vision_end_token_id=303)


def _mistral3():
    tf = _tf()
    vision = tf.PixtralVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                                    head_dim=32, image_size=32, patch_size=8)
    text = tf.MistralConfig(**common(sliding_window=None))
    return tf.Mistral3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), image_token_index=300,
                             spatial_merge_size=2)


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("llama", "LlamaForCausalLM", lambda: _tf().LlamaConfig(**common())),
    Architecture("mistral", "MistralForCausalLM", lambda: _tf().MistralConfig(**common(sliding_window=None))),
    Architecture("qwen2", "Qwen2ForCausalLM", lambda: _tf().Qwen2Config(**common())),
    Architecture("qwen3", "Qwen3ForCausalLM", lambda: _tf().Qwen3Config(**common())),
    Architecture("qwen3-moe", "Qwen3MoeForCausalLM",
                 lambda: _tf().Qwen3MoeConfig(**_moe(decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True)),
                 moe=True),
    Architecture("mixtral", "MixtralForCausalLM",
                 lambda: _tf().MixtralConfig(**common(num_local_experts=EXPERTS, num_experts_per_tok=TOP_K)), moe=True),
    Architecture("granite", "GraniteForCausalLM", lambda: _tf().GraniteConfig(**common())),
    Architecture("olmo2", "Olmo2ForCausalLM", lambda: _tf().Olmo2Config(**common())),
    Architecture("smollm3", "SmolLM3ForCausalLM", lambda: _tf().SmolLM3Config(**common())),
    Architecture("phi3", "Phi3ForCausalLM", lambda: _tf().Phi3Config(**common())),
    Architecture("gemma2", "Gemma2ForCausalLM",
                 lambda: _tf().Gemma2Config(**common(sliding_window=64, query_pre_attn_scalar=HEAD_DIM))),
    Architecture("gemma3-text", "Gemma3ForCausalLM", _gemma3_text),
    Architecture("gemma3-multimodal", "Gemma3ForConditionalGeneration", _gemma3_multimodal),
    Architecture("gemma4-text", "Gemma4ForCausalLM", _gemma4_text),
    Architecture("gemma4-moe", "Gemma4ForCausalLM", _gemma4_moe, moe=True),
    Architecture("gemma4-multimodal", "Gemma4ForConditionalGeneration", _gemma4_multimodal),
    Architecture("qwen2.5-vl-multimodal", "Qwen2_5_VLForConditionalGeneration", _qwen25_vl),
    Architecture("mistral3-multimodal", "Mistral3ForConditionalGeneration", _mistral3),
    Architecture("glm4-moe", "Glm4MoeForCausalLM",
                 lambda: _tf().Glm4MoeConfig(**_moe(n_routed_experts=EXPERTS, n_shared_experts=1,
                                                    first_k_dense_replace=1, n_group=1, topk_group=1,
                                                    partial_rotary_factor=0.5)), moe=True),
    Architecture("ernie4.5-moe", "Ernie4_5_MoeForCausalLM",
                 lambda: _tf().Ernie4_5_MoeConfig(**_moe(moe_num_experts=EXPERTS, moe_k=TOP_K,
                                                         moe_layer_start_index=1, moe_num_shared_experts=0)),
                 moe=True),
    # --no-mtp: the converter otherwise expects the published checkpoint's MTP layer, which transformers never builds
    # configs llama.cpp does not reproduce (imatrix.model.divergence): the warning is given and the values differ
    Architecture("qwen3-moe:norm_topk_prob=False", "Qwen3MoeForCausalLM",
                 lambda: _tf().Qwen3MoeConfig(**_moe(decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=False)),
                 moe=True, diverges=True),
    Architecture("gemma3:query_pre_attn_scalar=128", "Gemma3ForCausalLM",
                 lambda: _gemma3_text(query_pre_attn_scalar=2 * HEAD_DIM), diverges=True),
    Architecture("qwen3-next", "Qwen3NextForCausalLM", _qwen3_next, moe=True, converter_args=("--no-mtp",)),
    Architecture("deepseek-v3", "DeepseekV3ForCausalLM", _deepseek_v3, moe=True),
    Architecture("llama4", "Llama4ForCausalLM", _llama4_text, moe=True,
                 llamacpp_aborts="llama-imatrix and llama-perplexity b11434 abort on the converted tiny model "
                                 "(ggml-backend.cpp:478 'tensor buffer not set')"),
    Architecture("minimax-m2", "MiniMaxM2ForCausalLM", _minimax_m2, moe=True),
    # transformers saves layer_types as linear/full_attention; the converter reads the published mamba/attention
    Architecture("granite-hybrid", "GraniteMoeHybridForCausalLM", _granite_hybrid, moe=True,
                 published_config=(("layer_types", ["mamba", "attention"]),)),
)

BY_NAME = {arch.name: arch for arch in ARCHITECTURES}
