"""Layer-sequential runner (`--offload sequential`): one decoder layer's weights on the device at a time.

1. The model is built on the meta device; only the non-layer weights (embeddings, final norm, head) are loaded, and
   the non-persistent buffers (rotary tables, embedding scales) are initialised the way from_pretrained does it.
2. The model's own forward runs once per micro-batch with the decoder layers replaced by recorders, so the model code
   builds masks (sliding/full windows), rotary embeddings and per-layer inputs exactly as in a resident run; the
   recorders keep each layer's call arguments and layer 0's input (the embeddings).
3. For each layer: its tensors are read from the memory-mapped safetensors shards (only that layer's keys) and
   converted by transformers' own conversion mapping (e.g. per-expert weights → fused experts), the hidden states of
   every micro-batch go through it with the collector's hooks active, then the layer goes back to meta.
4. The model's forward runs once more per micro-batch with layer 0's recorder returning the final hidden states, so
   the final norm, soft-capping and head are the model's own: the PPL equals a resident run's.

Every micro-batch holds the same chunks as in the resident runner and each key sees the batches in the same order,
so on the CPU the statistics and the PPL are bit-identical to a resident run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from imatrix.collect.accumulators import Accumulators, Plan, collecting, column_energy
from imatrix.model.loading import ModelLoadError
from imatrix.runners.base import (
    NonFiniteError,
    Perplexity,
    RunOptions,
    RunRequest,
    chunk_nll,
    logits_to_keep,
    parse_device,
)
from imatrix.runners.layer_loading import LayerLoader, decoder_layers, load_skeleton, materialised_bytes


class _StopForward(Exception):
    """Raised by the last recorder: nothing after the decoder layers is needed while recording."""


class _LayerStandIn(nn.Module):
    """Takes a decoder layer's place in the model's forward: records its arguments or replays stored hidden states."""

    def __init__(self, index: int, layer: nn.Module, runner: _Recording) -> None:
        super().__init__()
        self.index, self.runner = index, runner
        self.__dict__["wrapped"] = layer  # not a submodule: the stand-in owns no weights

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["wrapped"], name)  # e.g. attention_type read by the model's loop

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        return self.runner.visit(self.index, hidden_states, args, kwargs)


@dataclass
class _Recording:
    """What the stand-ins do in the current forward: record (args, kwargs) per layer, or replay a final hidden state."""

    n_layers: int
    replay: torch.Tensor | None = None
    calls: list = field(default_factory=list)
    first_input: torch.Tensor | None = None

    def visit(self, index: int, hidden_states: torch.Tensor, args: tuple, kwargs: dict):
        if self.replay is not None:
            return self.replay if index == 0 else hidden_states
        if index == 0:
            self.first_input = hidden_states
        self.calls.append((args, kwargs))
        if index == self.n_layers - 1:
            raise _StopForward
        return hidden_states


@dataclass
class SequentialReport:
    """What the sequential run measured: peak weight bytes of the layers, hidden-state bytes and where they lived."""

    peak_layer_bytes: int = 0
    hidden_bytes: int = 0
    hidden_on: str = ""
    peak_device_bytes: int | None = None

    def lines(self) -> list[str]:
        lines = [f"sequential: at most {self.peak_layer_bytes / 2**20:.1f} MiB of decoder-layer weights "
                 f"materialised at once; hidden states {self.hidden_bytes / 2**20:.1f} MiB on {self.hidden_on}"]
        if self.peak_device_bytes is not None:
            lines.append(f"peak device memory: {self.peak_device_bytes / 2**30:.2f} GiB "
                         "(torch.cuda.max_memory_allocated)")
        else:
            import resource

            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
            lines.append(f"peak device memory: CPU run, process peak RSS {peak_kib / 2**20:.2f} GiB")
        return lines


def _hidden_home(device: torch.device, total_bytes: int) -> torch.device:
    """Keep hidden states on the GPU when they take at most half its free memory, else in pinned host memory."""
    if device.type != "cuda":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if total_bytes <= free // 2 else torch.device("cpu")


def run_sequential(model: nn.Module, loader: LayerLoader, chunks: np.ndarray, plan: Plan, stats: Accumulators,
                   options: RunOptions, log: Callable[[str], None] = print,
                   energy: dict[str, np.ndarray] | None = None, checkpointer=None,
                   on_layer_batch_done: Callable[[int, int], None] | None = None,
                   perplexity: Perplexity | None = None) -> tuple[Perplexity | None, SequentialReport]:
    """Collect over all chunks one decoder layer at a time (see the module docstring). With `energy` (--hybrid), the
    column energies of each layer's weights are added to it while that layer is loaded. With a `checkpointer`
    (collect.checkpoint.LayerCheckpointer) finished layers are checkpointed, and a resumed run starts after them."""
    from tqdm.auto import tqdm

    device, report = loader.device, SequentialReport()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n_chunk, ctx_size = chunks.shape
    per_batch = options.chunks_per_batch(ctx_size)
    batches = [(start, min(start + per_batch, n_chunk)) for start in range(0, n_chunk, per_batch)]
    layers_name, _ = decoder_layers(model)
    recording = _Recording(len(decoder_layers(model)[1]))
    if energy is not None:  # the weights outside the layers (an untied head) are loaded for the whole run
        column_energy(plan, energy, within=lambda name: not name.startswith(layers_name + "."))
    with torch.no_grad():
        with _stand_ins(model, recording) as real_layers:
            hidden, calls = _record_inputs(model, chunks, batches, device, recording, report)
        start = 0
        if checkpointer is not None and checkpointer.resume:
            start, saved = checkpointer.load(stats, energy)
            hidden = [h.to(hidden[i].device).pin_memory() if hidden[i].is_pinned() else h.to(hidden[i].device)
                      for i, h in enumerate(saved)]
        log(f"sequential: {len(real_layers)} decoder layers x {len(batches)} micro-batches; hidden states "
            f"{report.hidden_bytes / 2**20:.1f} MiB on {report.hidden_on}")
        bar = tqdm(total=len(real_layers) * n_chunk * ctx_size, unit="tok", unit_scale=True,
                   disable=not options.progress, desc="collect (sequential)", dynamic_ncols=True)
        bar.update(start * n_chunk * ctx_size)
        with collecting(plan, stats), bar:
            for index, layer in enumerate(real_layers):
                if index < start:
                    continue  # finished before the checkpoint this run resumed from
                loader.load(index)
                if energy is not None:
                    prefix = f"{layers_name}.{index}."
                    column_energy(plan, energy, within=lambda name: name.startswith(prefix))
                _run_layer(index, layer, hidden, calls, batches, device, stats, report, bar, on_layer_batch_done)
                if checkpointer is not None:
                    checkpointer.layer_done(index + 1, len(real_layers), stats, energy, hidden)
            with _stand_ins(model, recording):
                perplexity = _final_pass(model, chunks, batches, hidden, device, options, recording, perplexity)
    if device.type == "cuda":
        report.peak_device_bytes = torch.cuda.max_memory_allocated(device)
    return perplexity, report


@contextmanager
def _stand_ins(model: nn.Module, recording: _Recording) -> Iterator[list[nn.Module]]:
    """Swap the decoder layers for stand-ins (yielding the real ones) and always put them back."""
    layers_name, layers = decoder_layers(model)
    parent_name, _, attribute = layers_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    real_layers = list(layers)
    stand_ins = [_LayerStandIn(i, layer, recording) for i, layer in enumerate(real_layers)]
    setattr(parent, attribute, nn.ModuleList(stand_ins))
    try:
        yield real_layers
    finally:
        setattr(parent, attribute, layers)


def _record_inputs(model, chunks, batches, device, recording, report):
    """Per micro-batch: layer 0's input (the embeddings) and every layer's call arguments, from the model's forward."""
    hidden, calls = [], []
    for start, stop in batches:
        recording.calls, recording.first_input = [], None
        batch = torch.from_numpy(chunks[start:stop]).to(device)
        try:
            model(input_ids=batch, use_cache=False, logits_to_keep=1)
        except _StopForward:
            pass
        hidden.append(recording.first_input)
        calls.append(recording.calls)
    report.hidden_bytes = sum(h.numel() * h.element_size() for h in hidden)
    home = _hidden_home(device, report.hidden_bytes)
    if home != device:
        hidden = [h.cpu().pin_memory() for h in hidden]
    report.hidden_on = "pinned host memory" if home != device else str(device)
    return hidden, calls


def _run_layer(index, layer, hidden, calls, batches, device, stats, report, bar, on_batch_done=None) -> None:
    """Push every micro-batch through the loaded layer `index` in place, check the sums, free it."""
    report.peak_layer_bytes = max(report.peak_layer_bytes, materialised_bytes(layer))
    for b, (start, stop) in enumerate(batches):
        args, kwargs = calls[b][index]
        on_host = hidden[b].device != device
        x = hidden[b].to(device, non_blocking=True) if on_host else hidden[b]
        out = layer(x, *args, **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        if on_host:
            hidden[b].copy_(out, non_blocking=True)
        else:
            hidden[b] = out
        bar.update((stop - start) * x.shape[1])
        if on_batch_done is not None:
            on_batch_done(index, b)
    bad = stats.first_nonfinite()
    if bad is not None:
        raise NonFiniteError(f"non-finite values detected in {bad} while processing layer {index}")
    layer.to("meta")


def _final_pass(model, chunks, batches, hidden, device, options, recording, perplexity=None) -> Perplexity | None:
    """The model's forward with layer 0 replaced by the final hidden states: its own norm/head give the logits."""
    perplexity = (perplexity or Perplexity()) if options.compute_ppl else None
    if perplexity is None and not options.keep_all_logits:
        return None
    keep = logits_to_keep(options, chunks.shape[1])
    for b, (start, stop) in enumerate(batches):
        recording.replay = hidden[b].to(device)
        batch = torch.from_numpy(chunks[start:stop]).to(device)
        logits = model(input_ids=batch, use_cache=False, logits_to_keep=keep).logits
        if perplexity is not None:
            for row in chunk_nll(logits, batch).cpu().numpy():
                perplexity.add_chunk(row)
    recording.replay = None
    return perplexity


class SequentialRunner:
    """--offload sequential: one decoder layer of a safetensors checkpoint materialised at a time."""

    name = "sequential"

    def refusal(self, request: RunRequest) -> str | None:
        clashes = [name for name, given in (
            ("--device-map", request.device_map),
            ("torchrun with --save-every/--resume", _torchrun_active() and request.checkpoint is not None
             and request.checkpoint.active),
            ("--gguf-file/.gguf", request.source.gguf_file)) if given]
        if clashes:
            return (f"--offload sequential: cannot be combined with {', '.join(clashes)} (it streams one layer of a "
                    "safetensors checkpoint at a time and finishes each layer for all chunks)")
        return None

    def load(self, request: RunRequest, resources) -> nn.Module:
        from imatrix.runners.distributed import World, init_process_group

        world = World.from_env()
        self.device = parse_device(world.device(request.model.device))  # torchrun: cuda → cuda:LOCAL_RANK
        init_process_group(world, str(self.device))
        model, loader = load_skeleton(request.source.folder, request.model.dtype, self.device,
                                      request.model.trust_remote_code)
        self.loader = loader  # the skeleton's layer loader, used by run()
        return model

    def accumulators(self, request: RunRequest, model: nn.Module, shapes: dict[str, tuple[int, int]]) -> Accumulators:
        return Accumulators(shapes, self.device, request.accumulator_dtype)

    def run(self, request: RunRequest, model: nn.Module, plan: Plan, stats: Accumulators,
            on_chunks_done: Callable[[int], None]) -> Perplexity | None:
        energy = self.energy if request.hybrid else None
        if _torchrun_active():
            return self._run_ranks(request, model, plan, stats, energy)
        checkpointer = self._checkpointer(request, model, plan)
        try:
            perplexity, report = run_sequential(model, self.loader, request.chunks, plan, stats, request.options,
                                                request.log, energy, checkpointer)
        except BaseException as error:
            message = None if checkpointer is None else checkpointer.failure_message(error)
            if message is not None:
                request.log(message)
            raise
        for line in report.lines():
            request.log(line)
        return perplexity

    def _run_ranks(self, request: RunRequest, model: nn.Module, plan: Plan, stats: Accumulators, energy):
        """torchrun: each rank streams every layer over its share of the chunks; per-(layer, batch) partials are
        added on rank 0 in batch order (imatrix.runners.distributed), so the file is the single-process one."""
        from imatrix.runners.distributed import (
            LayerBatchPartials,
            World,
            run_distributed_sequential,
        )

        world = World.from_env()
        if "output.weight" in plan.shapes():
            raise ModelLoadError("--process-output with --offload sequential under torchrun: not supported; drop one")
        request.log(f"rank {world.rank}/{world.world_size}: data-parallel collection, layers streamed")
        layers_name, layers = decoder_layers(model)
        keys_of = [sorted({key for t in [*plan.dense, *plan.experts, *plan.mla, *plan.scaled_experts]
                           if t.module_name.startswith(f"{layers_name}.{i}.")
                           for key in getattr(t, "up_keys", [])
                           + [getattr(t, name) for name in ("key", "down_key", "k_b_key", "v_b_key") if hasattr(t, name)]})
                   for i in range(len(layers))]
        partials = LayerBatchPartials(stats)

        def run_shard(shard_chunks, options, perplexity):
            run_sequential(model, self.loader, shard_chunks, plan, stats, options, lambda line: None, energy,
                           on_layer_batch_done=lambda layer, batch: partials.layer_batch_done(keys_of[layer], batch),
                           perplexity=perplexity)

        return run_distributed_sequential(request.chunks, stats, request.options, world, run_shard, partials)

    def _checkpointer(self, request: RunRequest, model: nn.Module, plan: Plan):
        """--save-every N (a checkpoint after every N finished layers) / --resume, or None."""
        from imatrix.collect.checkpoint import (
            CheckpointPaths,
            LayerCheckpointer,
            run_identity,
            source_weight_files,
        )

        checkpoint = request.checkpoint
        if checkpoint is None:
            return None
        chunks = request.chunks
        identity = run_identity(
            model_label=request.source.label, model_config=model.config.to_dict(), dtype=request.model.dtype,
            data=checkpoint.data, chunks=chunks, skip_chunks=checkpoint.skip_chunks,
            chunks_per_batch=request.options.chunks_per_batch(chunks.shape[1]), accumulate=request.accumulate,
            shapes=plan.shapes(), weight_files=source_weight_files(request.source.folder, None), unit="layers",
            hybrid=request.hybrid)
        return LayerCheckpointer(CheckpointPaths.beside(checkpoint.output), identity, checkpoint.every,
                                 checkpoint.resume, request.log)

    def column_energy(self, plan: Plan) -> dict[str, np.ndarray]:
        """Filled during run(): each layer's energies are taken while the layer is loaded."""
        self.energy: dict[str, np.ndarray] = {}
        return self.energy

    def is_writer(self) -> bool:
        from imatrix.runners.distributed import World

        return World.from_env().is_writer


def _torchrun_active() -> bool:
    from imatrix.runners.distributed import World

    return World.from_env().active
