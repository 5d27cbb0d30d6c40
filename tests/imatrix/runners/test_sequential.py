"""--offload sequential equals a resident run bit for bit (statistics and PPL) and holds one layer's weights at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imatrix.collect.accumulators import Accumulators, plan_targets
from imatrix.collect.checkpoint import CheckpointPaths
from imatrix.model.naming import TensorNaming
from imatrix.runners.base import RunOptions
from imatrix.runners.layer_loading import (
    decoder_layers,
    load_skeleton,
    materialised_bytes,
)
from imatrix.runners.resident import run_resident
from imatrix.runners.sequential import run_sequential
from tests.imatrix.collect.test_checkpoint import invoke, text_file, tiny_folder  # noqa: F401 - fixtures
from tests.imatrix.tiny_models import FAMILIES, VOCAB, build

CTX = 32  # > the tiny gemma models' sliding_window of 8, so local and global layers see different masks


def _save(family: str, folder, **save_options):
    model, _ = build(family)
    model.save_pretrained(folder, **save_options)
    return folder


def _resident(folder, chunks, options):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    stats = Accumulators(plan.shapes(), "cpu")
    return stats, run_resident(model, chunks, plan, stats, options)


def _sequential(folder, chunks, options, probe=None):
    model, loader = load_skeleton(folder, "fp32", torch.device("cpu"))
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    stats = Accumulators(plan.shapes(), "cpu")
    handles = [] if probe is None else probe(model)
    perplexity, report = run_sequential(model, loader, chunks, plan, stats, options)
    for handle in handles:
        handle.remove()
    return stats, perplexity, report, model


def _chunks(n_chunk: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, (n_chunk, CTX))


@pytest.mark.parametrize("family", FAMILIES)
def test_sequential_equals_resident_statistics_and_ppl(family, tmp_path):
    folder = _save(family, tmp_path / family, **({"max_shard_size": "100KB"} if family == "llama" else {}))
    if family == "llama":
        assert (folder / "model.safetensors.index.json").is_file()  # several shards
    chunks, options = _chunks(5), RunOptions(batch_size=2, progress=False)
    expected, expected_ppl = _resident(folder, chunks, options)
    stats, perplexity, _, _ = _sequential(folder, chunks, options)
    assert sorted(stats.sums) == sorted(expected.sums)
    for key in expected.sums:
        assert torch.equal(stats.sums[key], expected.sums[key]), key
        assert torch.equal(stats.counts[key], expected.counts[key]), key
    assert (perplexity.nll, perplexity.count, perplexity.per_chunk) == (
        expected_ppl.nll, expected_ppl.count, expected_ppl.per_chunk)


def test_at_most_one_layer_materialised_while_a_layer_runs(tmp_path):
    folder = _save("qwen3-moe", tmp_path / "moe")
    seen: list[int] = []

    def probe(model):
        _, layers = decoder_layers(model)
        return [layer.register_forward_pre_hook(lambda module, args: seen.append(materialised_bytes(layers)))
                for layer in layers]

    _, _, report, model = _sequential(folder, _chunks(3), RunOptions(batch_size=2, progress=False), probe)
    _, layers = decoder_layers(model)
    one_layer = sum(p.numel() * p.element_size() for p in layers[0].parameters())
    assert len(seen) == len(layers) * 2  # every layer ran once per micro-batch
    assert max(seen) == one_layer == report.peak_layer_bytes
    assert materialised_bytes(layers) == 0  # every layer went back to meta
    outside = materialised_bytes(model) - materialised_bytes(layers)
    assert outside == sum(p.numel() * p.element_size() for name, p in model.named_parameters()
                          if ".layers." not in name)


def test_cli_sequential_writes_the_resident_file(tiny_folder, text_file, tmp_path):  # noqa: F811
    resident, sequential = tmp_path / "resident.gguf", tmp_path / "sequential.gguf"
    first = invoke(tiny_folder, text_file, resident)
    second = invoke(tiny_folder, text_file, sequential, "--offload", "sequential")
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert sequential.read_bytes() == resident.read_bytes()
    ppl = [line for line in first.output.splitlines() if line.startswith("Final estimate")]
    assert ppl and ppl[0] in second.output.splitlines()
    assert "decoder-layer weights materialised at once" in second.output


@pytest.mark.parametrize("extra,named", [(["--device-map", "auto"], "--device-map")])
def test_cli_sequential_refuses_combinations(tiny_folder, text_file, tmp_path, extra, named):  # noqa: F811
    result = invoke(tiny_folder, text_file, tmp_path / "x.gguf", "--offload", "sequential", *extra)
    assert result.exit_code == 1 and named in result.output and "--offload sequential" in result.output


def test_cli_sequential_hybrid_writes_the_resident_files(tiny_folder, text_file, tmp_path):  # noqa: F811
    """--hybrid: each layer's column energies are taken while it is loaded; mixed and raw files equal resident's."""
    resident, sequential = tmp_path / "resident.gguf", tmp_path / "sequential.gguf"
    first = invoke(tiny_folder, text_file, resident, "--hybrid")
    second = invoke(tiny_folder, text_file, sequential, "--hybrid", "--offload", "sequential")
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert sequential.read_bytes() == resident.read_bytes()
    assert (tmp_path / "sequential.raw.gguf").read_bytes() == (tmp_path / "resident.raw.gguf").read_bytes()


def test_multimodal_checkpoint_streams_its_text_layers(tmp_path):
    """Gemma 4 as published (text + vision): the text decoder's layers stream, the vision tower is never loaded."""
    from tests.imatrix.model.test_converter_rules import _gemma4_multimodal

    model, _ = _gemma4_multimodal()
    folder = tmp_path / "gemma4-mm"
    model.save_pretrained(folder)
    chunks, options = _chunks(3), RunOptions(batch_size=2, progress=False)
    expected, expected_ppl = _resident(folder, chunks, options)
    stats, perplexity, _, skeleton = _sequential(folder, chunks, options)
    assert decoder_layers(skeleton)[0].endswith("language_model.layers")
    assert all(p.is_meta for name, p in skeleton.named_parameters() if "vision" in name)
    assert sorted(stats.sums) == sorted(expected.sums)
    for key in expected.sums:
        assert torch.equal(stats.sums[key], expected.sums[key]), key
    assert perplexity.per_chunk == expected_ppl.per_chunk


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_untied_head_with_process_output_and_bf16(tmp_path, dtype):
    """output.weight (untied head, --process-output) is collected in the final pass; bf16 weights convert alike."""
    from transformers import AutoModelForCausalLM

    model, _ = build("llama")
    assert not model.config.tie_word_embeddings
    folder = tmp_path / "llama"
    model.to(dtype).save_pretrained(folder)
    chunks = _chunks(3, seed=4)
    options = RunOptions(batch_size=2, progress=False, keep_all_logits=True)
    resident = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()
    plan = plan_targets(resident, TensorNaming.for_config(resident.config), process_output=True)
    expected = Accumulators(plan.shapes(), "cpu")
    expected_ppl = run_resident(resident, chunks, plan, expected, options)
    skeleton, loader = load_skeleton(folder, "bf16" if dtype == torch.bfloat16 else "fp32", torch.device("cpu"))
    assert skeleton.lm_head.weight.dtype == dtype
    plan = plan_targets(skeleton, TensorNaming.for_config(skeleton.config), process_output=True)
    stats = Accumulators(plan.shapes(), "cpu")
    perplexity, _ = run_sequential(skeleton, loader, chunks, plan, stats, options)
    assert "output.weight" in stats.sums and int(stats.counts["output.weight"][0]) == 3 * CTX
    for key in expected.sums:
        assert torch.equal(stats.sums[key], expected.sums[key]), key
    assert perplexity.per_chunk == expected_ppl.per_chunk


def _fail_in_layer(monkeypatch, layer_index: int, error: BaseException):
    """Make the sequential run fail while it runs decoder layer `layer_index` (after the earlier layers finished)."""
    from imatrix.runners import sequential

    original = sequential._run_layer

    def failing(index, *args, **kwargs):
        if index == layer_index:
            raise error
        return original(index, *args, **kwargs)

    monkeypatch.setattr(sequential, "_run_layer", failing)


@pytest.mark.parametrize("extra", [[], ["--hybrid"]])
def test_sequential_checkpoint_per_layer_resumes_to_the_resident_file(tiny_folder, text_file, tmp_path,  # noqa: F811
                                                                      monkeypatch, extra):
    resident, out = tmp_path / "resident.gguf", tmp_path / "sequential.gguf"
    assert invoke(tiny_folder, text_file, resident, *extra).exit_code == 0
    _fail_in_layer(monkeypatch, 1, KeyboardInterrupt())
    interrupted = invoke(tiny_folder, text_file, out, "--offload", "sequential", "--save-every", "1", *extra)
    assert interrupted.exit_code != 0 and "holds layers 0..0" in interrupted.output, interrupted.output
    assert not out.exists() and CheckpointPaths.beside(out).layers.is_file()
    monkeypatch.undo()
    resumed = invoke(tiny_folder, text_file, out, "--offload", "sequential", "--resume", *extra)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from" in resumed.output and "layers 0..0 done" in resumed.output
    assert out.read_bytes() == resident.read_bytes()
    if extra:
        assert (tmp_path / "sequential.raw.gguf").read_bytes() == (tmp_path / "resident.raw.gguf").read_bytes()
    assert not CheckpointPaths.beside(out).state.exists()  # the finished output supersedes the checkpoint


def test_sequential_resume_refuses_changed_options_or_weights(tiny_folder, text_file, tmp_path, monkeypatch):  # noqa: F811
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    out = tmp_path / "out.gguf"
    _fail_in_layer(monkeypatch, 1, RuntimeError("injected"))
    with pytest.raises(RuntimeError):
        invoke(folder, text_file, out, "--offload", "sequential", "--save-every", "1")
    monkeypatch.undo()
    other_batch = invoke(folder, text_file, out, "--offload", "sequential", "--resume", "--batch-size", "3")
    assert other_batch.exit_code == 1 and "chunks_per_batch" in other_batch.output
    resident_resume = invoke(folder, text_file, out, "--resume")
    assert resident_resume.exit_code == 1 and "unit" in resident_resume.output
    shard = next(folder.glob("*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # one changed weight byte
    shard.write_bytes(bytes(data))
    changed = invoke(folder, text_file, out, "--offload", "sequential", "--resume")
    assert changed.exit_code == 1 and "weights_sha256" in changed.output
