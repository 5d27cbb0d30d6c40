"""What llama.cpp's converter (convert_hf_to_gguf.py, b11434) does to a tensor name before and beyond gguf's tables.

gguf.TensorNameMap is the converter's name table, but the converter's model classes also skip, rename, split and
fuse tensors in their `filter_tensors`/`modify_tensors`. Every such rule that changes which imatrix key a linear's
input feeds is one row here, with the converter file it comes from; tests/conformance proves them against the real
converter. (Hand-copied facts, because the converter is not an installable library.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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

# One HF linear written as one or several GGUF tensors that all multiply its input (renames, row splits): each key gets
# the same column statistics. `dense` applies instead when the model has no routed experts.
def _halves(config: dict, n_out: int) -> list:
    """conversion/granite.py: data_torch.split(ffn_dim, dim=-2): gate = first half of the rows, up = second."""
    import torch

    rows = torch.arange(n_out)
    return [rows[: n_out // 2], rows[n_out // 2:]]


def _qwen3_next_qkvz(config: dict, n_out: int) -> list:
    """conversion/qwen.py: rows are [q, k, v, z] per key head; attn_qkv takes q, k, v of every group, attn_gate z."""
    import torch

    head_k, head_v = config["linear_key_head_dim"], config["linear_value_head_dim"]
    per_group_v = config["linear_num_value_heads"] // config["linear_num_key_heads"] * head_v
    position = torch.arange(n_out) % (2 * head_k + 2 * per_group_v)
    qkv = position < 2 * head_k + per_group_v
    return [torch.nonzero(qkv).flatten(), torch.nonzero(~qkv).flatten()]


@dataclass(frozen=True)
class RowSplit:
    kinds: tuple[MODEL_TENSOR, ...]
    dense: tuple[MODEL_TENSOR, ...] | None = None
    rows: Callable[[dict, int], list] | None = None  # (text config, out_features) → row indices of each kind

    def for_model(self, has_experts: bool) -> tuple[MODEL_TENSOR, ...]:
        return self.kinds if has_experts or self.dense is None else self.dense


_GRANITE_SHARED_IN = RowSplit((MODEL_TENSOR.FFN_GATE_SHEXP, MODEL_TENSOR.FFN_UP_SHEXP),
                              dense=(MODEL_TENSOR.FFN_GATE, MODEL_TENSOR.FFN_UP), rows=_halves)
_GRANITE_SHARED_OUT = RowSplit((MODEL_TENSOR.FFN_DOWN_SHEXP,), dense=(MODEL_TENSOR.FFN_DOWN,))
ROW_SPLITS: dict[tuple[MODEL_ARCH, str], RowSplit] = {
    # conversion/qwen.py Qwen3NextModel.modify_tensors: in_proj_qkvz → attn_qkv + attn_gate (not gguf's ssm_in)
    (MODEL_ARCH.QWEN3NEXT, "linear_attn.in_proj_qkvz"): RowSplit((MODEL_TENSOR.ATTN_QKV, MODEL_TENSOR.ATTN_GATE),
                                                             rows=_qwen3_next_qkvz),
    # conversion/granite.py GraniteMoeModel.modify_tensors (GraniteHybridModel inherits it): the shared MLP's fused
    # input_linear → gate + up of the shared expert (ffn_gate/ffn_up when there are no experts)
    (MODEL_ARCH.GRANITE_MOE, "shared_mlp.input_linear"): _GRANITE_SHARED_IN,
    (MODEL_ARCH.GRANITE_MOE, "shared_mlp.output_linear"): _GRANITE_SHARED_OUT,
    (MODEL_ARCH.GRANITE_HYBRID, "shared_mlp.input_linear"): _GRANITE_SHARED_IN,
    (MODEL_ARCH.GRANITE_HYBRID, "shared_mlp.output_linear"): _GRANITE_SHARED_OUT,
}


# Architectures whose GGUF keys this collector cannot compute; refused before the model is loaded, with why and what
# to do. (DeepSeek MLA: imatrix.collect.mla; Llama 4 experts: imatrix.collect.scaled_experts.)
REFUSED: dict[MODEL_ARCH, str] = {
}


def is_multimodal(name: str) -> bool:
    """True for a tower/projector name the converter keeps out of the text GGUF."""
    return name.startswith(MULTIMODAL_PREFIXES) or any(marker in name for marker in MULTIMODAL_MARKERS)


def converter_text_name(name: str) -> str | None:
    """The name the converter looks up for a text-model tensor (None: not in the text GGUF at all)."""
    if is_multimodal(name):
        return None
    return name.replace(LANGUAGE_MODEL_PREFIX, "")
