"""Which runner collects, and around it checkpoints: single device, torchrun data-parallel, or accelerate device_map.

"What is accumulated" stays in imatrix.collector and "where results go" in imatrix.collect_pipeline; this module only
picks how the model is loaded and run for the scale options of `imatrix collect` (--device-map, torchrun, --save-every,
--resume).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

import numpy as np
import torch

from imatrix.checkpoint import CheckpointPaths, run_identity, run_resumable
from imatrix.collector import Plan, Statistics
from imatrix.model_loading import ModelLoadError, ModelOptions, ModelSource, load_model
from imatrix.runners.device_map import PlacedStatistics, load_device_mapped, parse_max_memory
from imatrix.runners.distributed import World, init_process_group, run_distributed
from imatrix.runners.resident import Perplexity, RunOptions, run_resident

if TYPE_CHECKING:
    from imatrix.collect_pipeline import CollectSettings


def check_scale_options(settings: CollectSettings) -> None:
    """Refuse combinations that cannot work, naming the options."""
    world = World.from_env()
    if settings.device_map and settings.hybrid:
        raise ModelLoadError("--hybrid with --device-map: the column energies need every weight resident, and a "
                             "device map may offload some to cpu/disk; collect without --hybrid, or on one device")
    if world.active and settings.device_map:
        raise ModelLoadError("--device-map: not supported under torchrun (each rank holds a whole model); drop one")
    if world.active and (settings.save_every or settings.resume):
        raise ModelLoadError("--save-every/--resume: not supported under torchrun yet; run a single process to resume")
    if settings.offload == "sequential":
        clashes = [name for name, given in (("--device-map", settings.device_map), ("torchrun", world.active),
                                            ("--save-every", settings.save_every), ("--resume", settings.resume),
                                            ("--hybrid", settings.hybrid), ("--gguf-file/.gguf", settings.gguf_file
                                                                              or settings.model.endswith(".gguf")))
                   if given]
        if clashes:
            raise ModelLoadError(f"--offload sequential: cannot be combined with {', '.join(clashes)} (it streams one "
                                 "layer of a safetensors checkpoint at a time and finishes each layer for all chunks)")


def prepare_model(settings: CollectSettings, source: ModelSource, resources: ExitStack):
    """Load the model where the scale options say (torchrun rank device, device_map placement, or --device)."""
    check_scale_options(settings)
    if settings.offload == "sequential":
        from imatrix.runners.sequential import load_skeleton

        model, loader = load_skeleton(source.folder, settings.dtype, _device(settings.device),
                                      settings.trust_remote_code)
        model.imatrix_layer_loader = loader  # travels with the skeleton to run_chunks
        return model
    if settings.device_map:
        return load_device_mapped(source, settings.device_map, settings.dtype, settings.trust_remote_code,
                                  parse_max_memory(settings.max_memory), resources)
    world = World.from_env()
    device = world.device(settings.device)
    init_process_group(world, device)
    return load_model(source, ModelOptions(settings.model, settings.gguf_file, settings.dtype, device,
                                           settings.trust_remote_code))


def make_statistics(settings: CollectSettings, model: torch.nn.Module,
                    shapes: dict[str, tuple[int, int]]) -> Statistics:
    """Accumulators on the model's device, or following each key's inputs under a device_map."""
    dtype = torch.float64 if settings.accumulate == "float64" else torch.float32
    if settings.device_map:
        return PlacedStatistics(shapes, "cpu", dtype)
    if settings.offload == "sequential":
        return Statistics(shapes, _device(settings.device), dtype)
    return Statistics(shapes, next(model.parameters()).device, dtype)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ModelLoadError(f"--device {name!r}: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {name}: CUDA is not available on this machine")
    return device


def is_writer() -> bool:
    """Only rank 0 of a torchrun job writes files and prints the summary."""
    return World.from_env().is_writer


def run_chunks(settings: CollectSettings, source: ModelSource, model: torch.nn.Module, chunks: np.ndarray, plan: Plan,
               stats: Statistics, options: RunOptions, datasets: list[str], on_chunks_done: Callable[[int], None],
               log: Callable[[str], None]) -> Perplexity | None:
    """Collect over all chunks with the runner the options select; checkpoints around single-process runs."""
    world = World.from_env()
    if settings.offload == "sequential":
        from imatrix.runners.sequential import run_sequential

        perplexity, report = run_sequential(model, model.imatrix_layer_loader, chunks, plan, stats, options, log)
        for line in report.lines():
            log(line)
        return perplexity
    if world.active:
        log(f"rank {world.rank}/{world.world_size}: data-parallel collection")
        return run_distributed(model, chunks, plan, stats, options, world)
    identity = run_identity(
        model_label=source.label, model_config=model.config.to_dict(), dtype=settings.dtype, data=settings.data,
        chunks=chunks, skip_chunks=settings.skip_chunks, chunks_per_batch=options.chunks_per_batch(chunks.shape[1]),
        accumulate=settings.accumulate, shapes=plan.shapes())

    def run(start: int, perplexity: Perplexity | None, on_batch_done) -> Perplexity | None:
        return run_resident(model, chunks, plan, stats, options, on_chunks_done, start_chunk=start,
                            perplexity=perplexity, on_batch_done=on_batch_done)

    return run_resumable(run, stats, CheckpointPaths.beside(settings.output), identity, datasets,
                         every=settings.save_every, resume=settings.resume, log=log)
