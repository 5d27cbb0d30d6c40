"""Config fields with which transformers and llama.cpp compute different activations from the same weights.

The converter writes no GGUF field for these, so llama.cpp applies its own fixed rule while transformers follows the
checkpoint's config: the GGUF "encodes" llama.cpp's rule. `imatrix collect` measures the transformers model (the
published reference), so where the two disagree the imatrix differs from what llama-imatrix would measure on the
converted GGUF; the collector says so. Each row cites the llama.cpp source of the rule; tests/conformance checks the
values the published checkpoints use agree on both sides.
"""

from __future__ import annotations

from collections.abc import Callable

from gguf import MODEL_ARCH

# src/models/<arch>.cpp build_moe_ffn(..., norm_w, ...): whether llama.cpp renormalises the top-k routing weights.
RENORMALISES_TOP_K = {
    MODEL_ARCH.QWEN3MOE: True, MODEL_ARCH.QWEN3VLMOE: True, MODEL_ARCH.QWEN3NEXT: True, MODEL_ARCH.QWEN35MOE: True,
    MODEL_ARCH.QWEN2MOE: False,
}
# src/models/gemma2.cpp, gemma3.cpp: the attention scale is 1/sqrt(n_embd/n_head) for the 27B layer count, else
# 1/sqrt(head_dim); query_pre_attn_scalar is not read.
GEMMA_27B_LAYERS = {MODEL_ARCH.GEMMA2: 46, MODEL_ARCH.GEMMA3: 62}


def _top_k_norm(arch: MODEL_ARCH, config) -> str | None:
    if arch not in RENORMALISES_TOP_K or getattr(config, "norm_topk_prob", None) is None:
        return None
    llama = RENORMALISES_TOP_K[arch]
    if bool(config.norm_topk_prob) == llama:
        return None
    return (f"norm_topk_prob={config.norm_topk_prob}: llama.cpp {'always' if llama else 'never'} renormalises the "
            f"top-k routing weights for {arch.name.lower()} (src/models/*.cpp build_moe_ffn; the GGUF has no field for "
            "it), so llama.cpp runs this checkpoint differently from transformers; this imatrix follows transformers")


def _gemma_attention_scale(arch: MODEL_ARCH, config) -> str | None:
    scalar = getattr(config, "query_pre_attn_scalar", None)
    if arch not in GEMMA_27B_LAYERS or scalar is None:
        return None
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    used = (config.hidden_size // config.num_attention_heads if config.num_hidden_layers == GEMMA_27B_LAYERS[arch]
            else head_dim)
    if float(scalar) == float(used):
        return None
    return (f"query_pre_attn_scalar={scalar}: llama.cpp scales {arch.name.lower()} attention by 1/sqrt({used}) "
            "(src/models/gemma*.cpp; the GGUF has no field for it), transformers by 1/sqrt(query_pre_attn_scalar), so "
            "llama.cpp runs this checkpoint differently; this imatrix follows transformers")


# src/models/gemma2.cpp / gemma3.cpp load_swa_pattern(ml, n): with no pattern in the GGUF (their converters write
# none), layer i uses the sliding window unless (i + 1) % n == 0 (llama_hparams::set_swa_pattern).
SWA_PATTERN = {MODEL_ARCH.GEMMA2: 2, MODEL_ARCH.GEMMA3: 6}


def _gemma_layer_types(arch: MODEL_ARCH, config) -> str | None:
    layer_types = getattr(config, "layer_types", None)
    if arch not in SWA_PATTERN or not layer_types or not getattr(config, "sliding_window", None):
        return None
    n = SWA_PATTERN[arch]
    llama = ["full_attention" if (i + 1) % n == 0 else "sliding_attention" for i in range(len(layer_types))]
    if list(layer_types) == llama:
        return None
    return (f"layer_types {list(layer_types)}: llama.cpp runs {arch.name.lower()} with every {n}th layer full and "
            f"the others sliding ({llama}; the GGUF has no per-layer pattern), so llama.cpp runs this checkpoint "
            "differently from transformers; this imatrix follows transformers")


CHECKS: tuple[Callable[[MODEL_ARCH, object], str | None], ...] = (_top_k_norm, _gemma_attention_scale, _gemma_layer_types)


def divergence_warnings(arch: MODEL_ARCH, config) -> list[str]:
    """One message per config field with which llama.cpp will not reproduce transformers' activations."""
    text = getattr(config, "text_config", None) or config
    return [message for check in CHECKS if (message := check(arch, text)) is not None]
