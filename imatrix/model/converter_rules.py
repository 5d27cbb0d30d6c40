"""What llama.cpp's converter (convert_hf_to_gguf.py, b11434) does to a tensor name before and beyond gguf's tables.

gguf.TensorNameMap is the converter's name table, but the converter's model classes also skip, rename, split and
fuse tensors in their `filter_tensors`/`modify_tensors`. Every such rule that changes which imatrix key a linear's
input feeds is one row here, with the converter file it comes from; tests/conformance proves them against the real
converter. (Hand-copied facts, because the converter is not an installable library.)
"""

from __future__ import annotations

from gguf import MODEL_ARCH, MODEL_TENSOR

# conversion/base.py TextModel.filter_tensors: names the text GGUF never holds (vision/audio towers, projectors);
# the converter writes them to the mmproj GGUF (--mmproj), which llama-quantize does not quantize with an imatrix.
MULTIMODAL_PREFIXES = ("mlp", "vit.", "vpm.", "siglip2.", "conformer.", "merger.", "resampler.", "sound_encoder.",
                       "sound_projection.", "speech_embeddings.")
MULTIMODAL_MARKERS = ("visual.", "vision.", "audio.", "talker.", "vision_", "audio_", "token2wav.", "code2wav.",
                      "projector.", "pre_mm_projector_norm", "image_newline", "view_seperator", "patch_embed",
                      "patch_embedding", "patch_merger.", "patch_merge_mlp.", "model.connector.")
# conversion/base.py ModelBase.filter_tensors: the multimodal wrappers' text model is looked up without this.
LANGUAGE_MODEL_PREFIX = "language_model."

# Converter classes that split HF's fused 3-D experts gate_up_proj into ffn_gate_exps + ffn_up_exps even where the
# arch could load a fused ffn_gate_up_exps (only --fuse-gate-up-exps fuses): conversion/qwen.py Qwen2MoeModel and
# its subclasses, conversion/qwen3vl.py, conversion/llama.py Llama4Model, conversion/gpt_oss.py.
SPLIT_GATE_UP_EXPS = frozenset({
    MODEL_ARCH.QWEN2MOE, MODEL_ARCH.QWEN3MOE, MODEL_ARCH.QWEN3NEXT, MODEL_ARCH.QWEN35MOE, MODEL_ARCH.QWEN3VLMOE,
    MODEL_ARCH.LLAMA4, MODEL_ARCH.GPT_OSS,
})

# One HF linear written as several GGUF tensors that all multiply the same input (row splits): each key gets the
# same column statistics. conversion/qwen.py Qwen3NextModel.modify_tensors: in_proj_qkvz → attn_qkv + attn_gate.
ROW_SPLITS: dict[tuple[MODEL_ARCH, str], tuple[MODEL_TENSOR, ...]] = {
    (MODEL_ARCH.QWEN3NEXT, "linear_attn.in_proj_qkvz"): (MODEL_TENSOR.ATTN_QKV, MODEL_TENSOR.ATTN_GATE),
}


def is_multimodal(name: str) -> bool:
    """True for a tower/projector name the converter keeps out of the text GGUF."""
    return name.startswith(MULTIMODAL_PREFIXES) or any(marker in name for marker in MULTIMODAL_MARKERS)


def converter_text_name(name: str) -> str | None:
    """The name the converter looks up for a text-model tensor (None: not in the text GGUF at all)."""
    if is_multimodal(name):
        return None
    return name.replace(LANGUAGE_MODEL_PREFIX, "")
