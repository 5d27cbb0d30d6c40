"""--device-map auto (accelerate) with a max_memory that pushes modules to disk gives the resident run's file.

This machine has no GPU, so the test exercises accelerate's offload path (modules on "disk" executed on the CPU with
weights streamed in by accelerate's hooks, the fused-experts override going through those hooks) and the
device-following accumulators; a split across several GPUs is the same code with real devices, not covered here.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import torch

from imatrix.model.loading import ModelSource
from imatrix.runners.device_map import PlacedAccumulators, load_device_mapped, parse_max_memory
from tests.imatrix.collect.test_checkpoint import invoke, text_file, tiny_folder  # noqa: F401 - fixtures

MAX_MEMORY = "cpu=150KB"


def _ppl_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Final estimate"))


def test_max_memory_really_offloads_to_disk(tiny_folder):  # noqa: F811
    with ExitStack() as resources:
        model = load_device_mapped(ModelSource(tiny_folder, None), "auto", "fp32", False,
                                   parse_max_memory(MAX_MEMORY), resources)
        placements = set(model.hf_device_map.values())
        assert "disk" in placements, model.hf_device_map
        assert any(p.device.type == "meta" for p in model.parameters())


def test_device_map_with_disk_offload_equals_resident_run(tiny_folder, text_file, tmp_path):  # noqa: F811
    resident, mapped = tmp_path / "resident.gguf", tmp_path / "mapped.gguf"
    first = invoke(tiny_folder, text_file, resident)
    second = invoke(tiny_folder, text_file, mapped, "--device-map", "auto", "--max-memory", MAX_MEMORY)
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert mapped.read_bytes() == resident.read_bytes()
    assert _ppl_line(second.output) == _ppl_line(first.output)


def test_placed_statistics_follow_the_input_device():
    stats = PlacedAccumulators({"blk.0.attn_q.weight": (1, 4)}, "meta", torch.float32)
    stats.add_rows("blk.0.attn_q.weight", 0, torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]]), 3)
    assert stats.sums["blk.0.attn_q.weight"].device.type == "cpu"
    entry = stats.to_imatrix(["d"], 1, 3).entries["blk.0.attn_q.weight"]
    assert entry.sums.tolist() == [[1.0, 2.0, 3.0, 4.0]] and entry.activation_sums.tolist() == [[-1.0, 0.5, 0.0, 2.0]]
    assert stats.counts["blk.0.attn_q.weight"].tolist() == [3]


@pytest.mark.parametrize("text,message", [("cpu", "expected DEVICE=AMOUNT"), ("=3GiB", "expected DEVICE=AMOUNT")])
def test_bad_max_memory_is_named(text, message):
    from imatrix.model.loading import ModelLoadError

    with pytest.raises(ModelLoadError, match=message):
        parse_max_memory(text)


def test_device_map_hybrid_equals_resident_hybrid(tiny_folder, text_file, tmp_path):  # noqa: F811
    """--hybrid with disk-offloaded modules: energies of offloaded weights come from accelerate's copies."""
    resident, mapped = tmp_path / "resident.gguf", tmp_path / "mapped.gguf"
    first = invoke(tiny_folder, text_file, resident, "--hybrid")
    second = invoke(tiny_folder, text_file, mapped, "--hybrid", "--device-map", "auto", "--max-memory", MAX_MEMORY)
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert mapped.read_bytes() == resident.read_bytes()
    assert (tmp_path / "mapped.raw.gguf").read_bytes() == (tmp_path / "resident.raw.gguf").read_bytes()
