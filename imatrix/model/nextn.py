"""NextN / MTP (multi-token prediction) layers: blocks that llama.cpp's converter keeps but transformers does not run.

GLM-4.x MoE, DeepSeek-V3 and Qwen3-Next/3.5 checkpoints carry one or more draft blocks after the trunk
(`model.layers.N.*` or `mtp.*`); convert_hf_to_gguf.py writes them as `blk.N.*` plus `blk.N.nextn.*` (block_count =
trunk + NextN layers, `<arch>.nextn_predict_layers`). transformers skips those weights on load
(`_keys_to_ignore_on_load_unexpected`), so a torch collection has no imatrix entries for them, and llama-quantize at
IQ2/IQ1/IQ3_XXS stops with "Missing importance matrix for tensor blk.N... in a very low-bit quantization" (llama.cpp
#23575). llama-imatrix --nextn collects them by running the MTP block on the trunk's hidden states; we cannot run a
block transformers never built, so we write nothing for it and say which `--tensor-type` overrides make the quant
succeed (a type that never needs an importance matrix, for those blocks only).
"""

from __future__ import annotations

import re

from imatrix.model.naming import text_config

# config keys naming the number of draft blocks (GLM-4.x / DeepSeek-V3 / Qwen3-Next / Qwen3.5)
NEXTN_CONFIG_KEYS = ("num_nextn_predict_layers", "mtp_num_hidden_layers")
# k-quants need no importance matrix (llama.cpp's tensor_requires_imatrix), Q4_K is the smallest safe one
# (Q2_K needs one in Q2_K_S files, Q3_K is rarely worth it for a draft block that decides acceptance rates)
OVERRIDE_TYPE = "q4_k"
MTP_TENSOR = re.compile(r"^(?:model\.)?mtp\.layers\.(\d+)\.")  # Qwen3-Next / Qwen3.5 checkpoints
GGUF_NEXTN_TENSOR = re.compile(r"^blk\.(\d+)\.nextn\.")


def nextn_blocks(config, tensor_names=()) -> list[int]:
    """Block numbers the GGUF conversion gives the NextN/MTP layers: num_hidden_layers … + n − 1 ([] if none).

    n comes from the config, or, as the converter does for Qwen3-Next (no mtp_num_hidden_layers in its config), from
    the checkpoint's `mtp.layers.K.*` tensor names.
    """
    text = text_config(config)
    values = text.to_dict() if hasattr(text, "to_dict") else dict(vars(text))
    n_nextn = max((int(values.get(key) or 0) for key in NEXTN_CONFIG_KEYS), default=0)
    if n_nextn == 0:
        found = [int(m.group(1)) for name in tensor_names if (m := MTP_TENSOR.match(name))]
        n_nextn = max(found) + 1 if found else 0
    trunk = int(values["num_hidden_layers"])
    return list(range(trunk, trunk + n_nextn))


def source_nextn_blocks(source, config) -> list[int]:
    """NextN blocks of a model source: a GGUF's own `blk.N.nextn.*` tensors, else the checkpoint's config/names."""
    if source.gguf_path is not None:
        from gguf import GGUFReader

        names = (t.name for t in GGUFReader(str(source.gguf_path)).tensors)
        return sorted({int(m.group(1)) for name in names if (m := GGUF_NEXTN_TENSOR.match(name))})
    return nextn_blocks(config, checkpoint_tensor_names(source.folder))


def checkpoint_tensor_names(folder) -> list[str]:
    """Tensor names of a safetensors checkpoint (its index, or the headers of its files), without loading data."""
    import json
    from pathlib import Path

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return list(json.loads(index.read_text()).get("weight_map", {}))
    from safetensors import safe_open

    names: list[str] = []
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), "np") as handle:
            names += list(handle.keys())
    return names


def tensor_type_overrides(blocks: list[int], qtype: str = OVERRIDE_TYPE) -> list[str]:
    """llama-quantize `--tensor-type` values (regex on names) that give these blocks a type needing no imatrix."""
    return [f"blk\\.{block}\\.={qtype}" for block in blocks]


def missing_nextn_message(blocks: list[int]) -> str | None:
    """What to tell the user when the model has NextN blocks this collection could not run; None when it has none."""
    if not blocks:
        return None
    flags = " ".join(f"--tensor-type '{override}'" for override in tensor_type_overrides(blocks))
    listed = ", ".join(f"blk.{block}" for block in blocks)
    them = "them" if len(blocks) > 1 else "it"
    return (f"NextN/MTP layer{'s' if len(blocks) > 1 else ''} {listed}: transformers does not load or run {them}, "
            f"so this imatrix has no entries for {them}. A GGUF converted with those layers needs, for "
            f"IQ1/IQ2/IQ3_XXS/Q2_K_S quants: llama-quantize {flags} --imatrix IMATRIX MODEL.gguf OUT.gguf TYPE "
            "(or convert with --no-mtp to leave them out)")


def draft_model_error(config) -> str | None:
    """Why a separate MTP drafter (Gemma 4 `*_assistant`) cannot be collected on its own, or None for other models.

    A drafter's forward takes its target's token embeddings, last hidden states and KV cache (transformers'
    Gemma4AssistantForCausalLM raises without them); llama-imatrix runs it beside the target with --model-draft.
    """
    model_type = getattr(config, "model_type", "") or ""
    if not model_type.endswith("_assistant"):
        return None
    return (f"{model_type} is a draft (MTP assistant) model: it runs on its target model's hidden states and KV "
            "cache, not on text, so `imatrix collect` cannot drive it alone. Collect the target with `imatrix collect "
            "TARGET`, and the drafter with llama.cpp: llama-imatrix -m TARGET.gguf --model-draft DRAFT.gguf -f TEXT "
            "-o draft.imatrix.gguf (b11434 or newer); or quantize the drafter to a type that needs no imatrix (Q4_K+)")
