"""Loading one decoder layer at a time: the skeleton holds only the non-layer weights (equal to the checkpoint's),
a layer's load materialises exactly that layer's tensors with the saved values, and a folder or model the loader
cannot stream is one clear error. (That a sequential run equals a resident one: test_sequential.py.)"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from imatrix.model.loading import ModelLoadError
from imatrix.runners.layer_loading import (
    LayerLoader,
    decoder_layers,
    load_skeleton,
    materialised_bytes,
)
from tests.imatrix.tiny_models import build


@pytest.fixture
def saved(tmp_path):
    model, _ = build("llama")
    model.save_pretrained(tmp_path / "llama")
    return tmp_path / "llama", load_file(str(tmp_path / "llama" / "model.safetensors"))


def test_skeleton_holds_the_checkpoint_outside_the_layers_and_nothing_inside(saved):
    folder, weights = saved
    model, loader = load_skeleton(folder, "fp32", torch.device("cpu"))
    name, layers = decoder_layers(model)
    assert name == "model.layers" and materialised_bytes(layers) == 0
    outside = {k: v for k, v in model.state_dict().items() if not k.startswith("model.layers.")}
    assert materialised_bytes(model) == sum(p.numel() * 4 for n, p in model.named_parameters()
                                            if not n.startswith("model.layers."))
    for key, value in weights.items():
        if not key.startswith("model.layers."):
            assert torch.equal(outside[key], value), key
    assert set(loader.keys_by_layer) == {None, *range(len(layers))}  # keys grouped per layer


def test_loading_a_layer_materialises_exactly_its_saved_tensors(saved):
    folder, weights = saved
    model, loader = load_skeleton(folder, "fp32", torch.device("cpu"))
    _, layers = decoder_layers(model)
    loaded = loader.load(1)
    assert {k for k in loaded if k.startswith("model.layers.")} >= {k for k in weights if k.startswith("model.layers.1.")}
    assert materialised_bytes(layers[0]) == 0
    assert materialised_bytes(layers[1]) == sum(v.numel() * 4 for k, v in weights.items()
                                                if k.startswith("model.layers.1."))
    state = model.state_dict()
    for key, value in weights.items():
        if key.startswith("model.layers.1."):
            assert torch.equal(state[key], value), key


def test_folder_without_safetensors_and_model_without_layers_are_clear_errors(saved, tmp_path):
    folder, _ = saved
    model, _ = load_skeleton(folder, "fp32", torch.device("cpu"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="empty: --offload sequential reads safetensors shards; none found"):
        LayerLoader(empty, model, torch.device("cpu"), torch.float32)
    with pytest.raises(ModelLoadError, match="Linear: no decoder layer list found"):
        decoder_layers(torch.nn.Linear(2, 2))
