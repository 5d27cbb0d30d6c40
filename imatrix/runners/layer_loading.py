"""Loading a checkpoint one decoder layer at a time, for the sequential runner: the model skeleton on the meta device
with only its non-layer weights, and a loader that materialises one layer's tensors from the memory-mapped
safetensors shards through transformers' own conversion mapping (e.g. per-expert weights → fused experts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from imatrix.model.converter_rules import is_multimodal
from imatrix.model.loading import ModelLoadError

LAYER_KEY_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The text decoder's layer list (`model.layers`, `model.language_model.layers`) and its qualified name; the layer
    lists of vision/audio towers (multimodal checkpoints) are not it."""
    for name, module in model.named_modules():
        if (name.endswith("layers") and isinstance(module, nn.ModuleList) and len(module) > 0
                and not is_multimodal(name)):
            return name, module
    raise ModelLoadError(f"{type(model).__name__}: no decoder layer list found; --offload sequential cannot run it")


class LayerLoader:
    """Reads one decoder layer's (or the non-layer) tensors from memory-mapped safetensors shards into the model."""

    def __init__(self, folder: Path, model: nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        from safetensors import safe_open
        from transformers.conversion_mapping import get_model_conversion_mapping

        index = folder / "model.safetensors.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        elif (folder / "model.safetensors").is_file():
            shards = ["model.safetensors"]
        else:
            raise ModelLoadError(f"{folder}: --offload sequential reads safetensors shards; none found")
        self.handles = [safe_open(str(folder / shard), framework="pt", device="cpu") for shard in shards]
        self.keys_by_layer: dict[int | None, list[tuple[str, object]]] = {}
        for handle in self.handles:
            for key in handle.keys():
                if is_multimodal(key):
                    continue  # towers/projectors: never run on text, never loaded (they stay on meta)
                match = LAYER_KEY_RE.search(key)
                self.keys_by_layer.setdefault(int(match.group(1)) if match else None, []).append((key, handle))
        self.model, self.device, self.dtype = model, device, dtype
        self.mapping = get_model_conversion_mapping(model)

    def load(self, layer: int | None) -> set[str]:
        """Materialise the tensors of `layer` (None = everything outside the layers); returns the model keys loaded."""
        from transformers.core_model_loading import convert_and_load_state_dict_in_model
        from transformers.modeling_utils import LoadStateDictConfig

        state = {key: handle.get_slice(key) for key, handle in self.keys_by_layer.get(layer, [])}
        config = LoadStateDictConfig(device_map={"": self.device}, dtype=self.dtype, weight_mapping=self.mapping)
        info, _ = convert_and_load_state_dict_in_model(self.model, state, config)
        expected = set(self.model.state_dict())
        return expected - set(info.missing_keys)


def load_skeleton(folder: Path, dtype_name: str, device: torch.device, trust_remote_code: bool = False):
    """(model with only the non-layer weights on `device`, LayerLoader): from_pretrained's steps, minus the layers."""
    from transformers import AutoConfig

    from imatrix.model.loading import auto_model_class, torch_dtype

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    if getattr(config, "num_kv_shared_layers", 0):
        raise ModelLoadError(f"{folder}: layers sharing another layer's K/V (num_kv_shared_layers) cannot run one "
                             "layer at a time; drop --offload sequential")
    dtype = torch_dtype(dtype_name)
    if dtype == "auto":
        dtype = getattr(config, "dtype", None) or torch.float32
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    with torch.device("meta"):
        model = auto_model_class(config).from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    loader = LayerLoader(folder, model, device, dtype)
    loaded = loader.load(None)
    layers_name, _ = decoder_layers(model)
    outside = {k for k in model.state_dict() if not k.startswith(layers_name + ".") and not is_multimodal(k)}
    # transformers' own steps for what the checkpoint does not hold: tied weights, non-persistent buffers (rotary)
    model._move_missing_keys_from_meta_to_device(outside - loaded, {"": device}, None, None)
    model._initialize_missing_keys(False)
    model.tie_weights()
    model.eval()
    model.config.use_cache = False
    return model, loader


def materialised_bytes(module: nn.Module) -> int:
    """Bytes of the parameters of `module` that are not on the meta device (the memory probe)."""
    return sum(p.numel() * p.element_size() for p in module.parameters() if not p.is_meta)
