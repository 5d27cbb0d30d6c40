"""HF module names → GGUF tensor names (the imatrix keys), through gguf-py's own converter tables.

The GGUF architecture comes from the converter's registry (converter_archs.TEXT_ARCHITECTURES, keyed by the
checkpoint's `architectures`); names go through the converter's own filters first (converter_rules: multimodal towers
skipped, `language_model.` stripped), then gguf.TensorNameMap, then the converter's splits (converter_rules).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gguf
from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, MODEL_TENSOR

from imatrix.model import converter_rules
from imatrix.model.converter_archs import TEXT_ARCHITECTURES

if TYPE_CHECKING:
    from torch import nn

# model_type values whose GGUF architecture is not simply the model_type without underscores.
# (Everything else is looked up by name in gguf's MODEL_ARCH_NAMES.)
ARCH_BY_MODEL_TYPE: dict[str, MODEL_ARCH] = {
    "mistral": MODEL_ARCH.LLAMA,
    "mixtral": MODEL_ARCH.LLAMA,  # converted as llama with *_exps tensors; gguf has no MIXTRAL
    "gemma3_text": MODEL_ARCH.GEMMA3,
    "gemma4_text": MODEL_ARCH.GEMMA4,
    "gemma3n_text": MODEL_ARCH.GEMMA3N,
    "qwen3_5": MODEL_ARCH.QWEN35,
    "qwen3_5_moe": MODEL_ARCH.QWEN35MOE,
    "gpt_oss": MODEL_ARCH.GPT_OSS,
}

# Module names transformers 5 gives after renaming checkpoint keys on load → the checkpoint name the converter sees
# (GraniteMoe/GraniteMoeHybrid: checkpoint `router.layer.weight` is loaded into a router module's own `weight`).
CHECKPOINT_ALIASES: dict[str, str] = {
    "block_sparse_moe.router": "block_sparse_moe.router.layer",
}
# ... and prefixes (Nemotron-H: checkpoint `backbone.layers.N` is the module `model.layers.N`)
CHECKPOINT_PREFIX_ALIASES: tuple[tuple[str, str], ...] = (("model.", "backbone."),)

# Synthetic HF names the converter's tables know for the stacked expert tensors, tried in order.
# (transformers 5 keeps experts fused in 3-D parameters; the converter splits/stacks them before mapping.)
EXPERT_PROJ_ALIASES: dict[str, tuple[str, ...]] = {
    "gate": ("gate_proj", "w1"),
    "up": ("up_proj", "w3"),
    "down": ("down_proj", "w2"),
    "gate_up": ("gate_up_proj",),
}
# Per-expert Linear names (older transformers / remote code) → which stacked tensor they are.
PER_EXPERT_PROJ: dict[str, str] = {
    "gate_proj": "gate", "w1": "gate", "up_proj": "up", "w3": "up", "down_proj": "down", "w2": "down",
}
BLOCK_INDEX_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")
PER_EXPERT_RE = re.compile(r"^(?P<prefix>.+\.experts)\.(?P<expert>\d+)\.(?P<proj>\w+)$")

# Names the converter writes when --fuse-qkv / --fuse-gate-up-exps are used (output-row concatenations, same input).
FUSED_KEYS: dict[MODEL_TENSOR, MODEL_TENSOR] = {
    MODEL_TENSOR.ATTN_Q: MODEL_TENSOR.ATTN_QKV,
    MODEL_TENSOR.ATTN_K: MODEL_TENSOR.ATTN_QKV,
    MODEL_TENSOR.ATTN_V: MODEL_TENSOR.ATTN_QKV,
    MODEL_TENSOR.FFN_GATE_EXP: MODEL_TENSOR.FFN_GATE_UP_EXP,
    MODEL_TENSOR.FFN_UP_EXP: MODEL_TENSOR.FFN_GATE_UP_EXP,
}


class NamingError(ValueError):
    """A module or architecture that has no GGUF name; the message says which and what to do."""


def text_config(config):
    """The decoder's config (multimodal configs keep it in text_config)."""
    return getattr(config, "text_config", None) or config


def arch_for_config(config) -> MODEL_ARCH:
    """gguf MODEL_ARCH for a transformers config: the converter's arch for its `architectures`, else by model_type."""
    by_name = {name: arch for arch, name in MODEL_ARCH_NAMES.items()}
    for architecture in getattr(config, "architectures", None) or ():
        if architecture in TEXT_ARCHITECTURES:
            arch_name = TEXT_ARCHITECTURES[architecture]
            if arch_name not in by_name:
                raise NamingError(
                    f"{architecture}: llama.cpp's converter writes GGUF architecture {arch_name!r}, which the "
                    f"installed gguf package {getattr(gguf, '__version__', '')} does not know; install a gguf that "
                    "has it (e.g. llama.cpp's gguf-py of the same release as your llama.cpp tools)")
            return by_name[arch_name]
    model_type = getattr(config, "model_type", None) or ""
    if model_type in ARCH_BY_MODEL_TYPE:
        return ARCH_BY_MODEL_TYPE[model_type]
    for candidate in (model_type, model_type.replace("_", ""), model_type.replace("_", "-")):
        if candidate in by_name:
            return by_name[candidate]
    raise NamingError(
        f"model_type {model_type!r} (architectures {getattr(config, 'architectures', None)}) has no GGUF "
        "architecture: llama.cpp's converter (b11434) does not convert it, so llama.cpp cannot use an imatrix for it; "
        "if a newer converter does, regenerate imatrix/model/converter_archs.py with scripts/converter_tables.py"
    )


def build_name_map(arch: MODEL_ARCH, n_blocks: int) -> gguf.TensorNameMap:
    """gguf.get_tensor_name_map without its class-level dict leak (spec §6): overrides go to an instance copy."""
    name_map = gguf.TensorNameMap.__new__(gguf.TensorNameMap)
    name_map.block_mappings_cfg = dict(gguf.TensorNameMap.block_mappings_cfg)
    name_map.__init__(arch, n_blocks)
    return name_map


@dataclass
class TensorNaming:
    """Maps module names of one model to imatrix keys (GGUF tensor names with `.weight`)."""

    arch: MODEL_ARCH
    n_blocks: int
    fuse_qkv: bool = False
    fuse_gate_up_exps: bool = False
    has_experts: bool = False  # some converter rules depend on it (converter_rules.RowSplit.dense)
    config_values: dict = field(default_factory=dict)  # the text config, for converter row layouts
    name_map: gguf.TensorNameMap = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.name_map = build_name_map(self.arch, self.n_blocks)

    @classmethod
    def for_config(cls, config, fuse_qkv: bool = False, fuse_gate_up_exps: bool = False) -> "TensorNaming":
        """Naming for a transformers config: the arch from model_type, n_blocks from num_hidden_layers."""
        arch = arch_for_config(config)
        if arch in converter_rules.REFUSED:
            raise NamingError(f"{getattr(config, 'architectures', None) or config.model_type}: "
                              f"{converter_rules.REFUSED[arch]}")
        text = text_config(config)
        experts = any(getattr(text, name, None) for name in ("num_local_experts", "num_experts", "n_routed_experts"))
        return cls(arch, int(text.num_hidden_layers), fuse_qkv, fuse_gate_up_exps, bool(experts), text.to_dict())

    def is_multimodal(self, hf_name: str) -> bool:
        """A vision/audio tower or projector module: the converter writes it to the mmproj GGUF, not the text one."""
        return converter_rules.is_multimodal(hf_name)

    def _lookup(self, hf_name: str) -> tuple[MODEL_TENSOR, str] | None:
        name = converter_rules.converter_text_name(hf_name)
        if name is None:
            return None
        found = self.name_map.get_type_and_name(name + ".weight", try_suffixes=(".weight",))
        for module_suffix, checkpoint_suffix in CHECKPOINT_ALIASES.items():
            if found is None and name.endswith(module_suffix):
                checkpoint_name = name[: -len(module_suffix)] + checkpoint_suffix
                found = self.name_map.get_type_and_name(checkpoint_name + ".weight", try_suffixes=(".weight",))
        for module_prefix, checkpoint_prefix in CHECKPOINT_PREFIX_ALIASES:
            if found is None and name.startswith(module_prefix):
                checkpoint_name = checkpoint_prefix + name[len(module_prefix):]
                found = self.name_map.get_type_and_name(checkpoint_name + ".weight", try_suffixes=(".weight",))
        if found is None:
            return None
        kind, key = found
        fused = FUSED_KEYS.get(kind)
        wants_fusion = self.fuse_qkv if fused == MODEL_TENSOR.ATTN_QKV else self.fuse_gate_up_exps
        if fused is not None and wants_fusion:
            key = key.replace(gguf.TENSOR_NAMES[kind].split(".")[-1], gguf.TENSOR_NAMES[fused].split(".")[-1], 1)
            kind = fused
        return kind, key

    def key(self, hf_name: str) -> str | None:
        """Imatrix key for a module (Linear, router) name, or None when the converter has no name for it."""
        found = self._lookup(hf_name)
        return None if found is None else found[1]

    def _row_split(self, hf_name: str) -> tuple[converter_rules.RowSplit, str] | None:
        block = BLOCK_INDEX_RE.search(hf_name)
        if block is None or self.is_multimodal(hf_name):
            return None
        for (arch, suffix), split in converter_rules.ROW_SPLITS.items():
            if arch == self.arch and hf_name.endswith(suffix):
                return split, block[1]
        return None

    def keys(self, hf_name: str) -> list[str]:
        """Every key a linear's input feeds: one, or several where the converter splits its rows (converter_rules)."""
        found = self._row_split(hf_name)
        if found is not None:
            split, block = found
            return [gguf.TENSOR_NAMES[kind].format(bid=block) + ".weight" for kind in split.for_model(self.has_experts)]
        key = self.key(hf_name)
        return [] if key is None else [key]

    def split_rows(self, hf_name: str, n_out: int) -> list:
        """Row indices of the weight that each of keys(hf_name) holds (for the column energies of --hybrid)."""
        split, _ = self._row_split(hf_name)
        if split.rows is None:
            raise NamingError(f"{hf_name}: no row layout known for its converter split")
        return split.rows(self.config_values, n_out)

    def kind(self, hf_name: str) -> MODEL_TENSOR | None:
        found = self._lookup(hf_name)
        return None if found is None else found[0]

    def expert_key(self, experts_prefix: str, proj: str) -> str | None:
        """Key of a stacked expert tensor; proj is gate, up, down or gate_up (fused, when the arch stores it so)."""
        for alias in EXPERT_PROJ_ALIASES[proj]:
            key = self.key(f"{experts_prefix}.{alias}")
            if key is not None:
                return key
        return None

    def fused_experts_keys(self, experts_prefix: str) -> tuple[list[str], str]:
        """Keys fed by a fused 3-D gate_up_proj (one fused key or gate + up) and the down_proj key."""
        fused = self.expert_key(experts_prefix, "gate_up")
        if self.arch in converter_rules.SPLIT_GATE_UP_EXPS and not self.fuse_gate_up_exps:
            fused = None  # the converter splits gate_up_proj into gate + up for this arch (converter_rules)
        if fused is not None:
            up_keys = [fused]
        else:
            gate, up = self.expert_key(experts_prefix, "gate"), self.expert_key(experts_prefix, "up")
            if gate is None or up is None:
                raise NamingError(f"{experts_prefix}.gate_up_proj: no GGUF name for the gate/up experts of {self.arch.name}")
            up_keys = [gate] if gate == up else [gate, up]  # fused by --fuse-gate-up-exps → one key
        down = self.expert_key(experts_prefix, "down")
        if down is None:
            raise NamingError(f"{experts_prefix}.down_proj: no GGUF name for the down experts of {self.arch.name}")
        return up_keys, down

    def per_expert(self, hf_name: str) -> tuple[str, int] | None:
        """(stacked key, expert index) for a per-expert Linear such as `mlp.experts.3.gate_proj`, else None."""
        match = PER_EXPERT_RE.match(hf_name)
        if match is None or match["proj"] not in PER_EXPERT_PROJ:
            return None
        key = self.expert_key(match["prefix"], PER_EXPERT_PROJ[match["proj"]])
        return None if key is None else (key, int(match["expert"]))


# What b11434's --process-output adds (its is_output rule): the head, the tied head (token_embd used as the output
# matmul) and a NextN draft's post-projection.
OUTPUT_KEYS = ("output.weight", "token_embd.weight", "nextn.post_projection.weight")


def is_collected_key(key: str, process_output: bool) -> bool:
    """llama-imatrix's rule (spec §1.2, §14.1): blk.* tensors, plus OUTPUT_KEYS with --process-output."""
    return key.startswith("blk.") or (process_output and key in OUTPUT_KEYS)


def check_entry_lengths(lengths: dict[str, int], gguf_path) -> None:
    """Every key exists in the target GGUF and holds ne0 × n_expert values, as llama-quantize checks (spec §5.3)."""
    reader = gguf.GGUFReader(str(gguf_path))
    expected = {}
    for tensor in reader.tensors:
        shape = [int(n) for n in tensor.shape]
        expected[tensor.name] = shape[0] * (shape[2] if len(shape) > 2 else 1)
    for key, length in sorted(lengths.items()):
        if key not in expected:
            raise NamingError(f"{key}: collected, but {gguf_path} has no tensor of that name")
        if expected[key] != length:
            raise NamingError(f"{key}: entry holds {length} values, {gguf_path} needs ne0*n_expert = {expected[key]}")


def unmapped_error(module_name: str, module: "nn.Module", arch: MODEL_ARCH) -> NamingError:
    return NamingError(
        f"linear layer {module_name!r} ({type(module).__name__}) inside a block has no GGUF name for arch "
        f"{MODEL_ARCH_NAMES[arch]!r}; llama.cpp could not use its imatrix entry. Use --skip-unmapped to ignore it."
    )
