"""Model-parallel placement with accelerate's `device_map` (`--device-map auto`): GPUs, then CPU, then disk.

transformers/accelerate place whole submodules and move activations between devices with their hooks; offloaded
("cpu"/"disk") modules run on the main execution device with weights streamed in. The collector's hooks see each
linear's input on whatever device it runs on, so the accumulators follow the inputs: `PlacedAccumulators` moves a key's
sums/counts to the device of its first input (once, no host sync) and `to_imatrix` gathers them at the end.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np
import torch

from imatrix.collect.accumulators import Accumulators, Plan, column_energy
from imatrix.model.loading import ModelLoadError, ModelSource, torch_dtype
from imatrix.runners.base import Perplexity, RunRequest
from imatrix.runners.distributed import World
from imatrix.runners.resident import ResidentRunner


class PlacedAccumulators(Accumulators):
    """Accumulators whose per-key sums live on the device where that key's inputs arrive."""

    def _follow(self, key: str, device: torch.device) -> None:
        if self.sums[key].device != device:
            is_meta = self.sums[key].is_meta  # created lazily: nothing to copy

            def move(tensor: torch.Tensor) -> torch.Tensor:
                return torch.zeros_like(tensor, device=device) if is_meta else tensor.to(device)

            self.sums[key] = move(self.sums[key])
            self.counts[key] = move(self.counts[key])

    def add_rows(self, key: str, row: int, column_sums: torch.Tensor, n_rows: int) -> None:
        self._follow(key, column_sums.device)
        super().add_rows(key, row, column_sums, n_rows)

    def add_routed(self, key: str, routing: torch.Tensor, squares: torch.Tensor, counts: torch.Tensor) -> None:
        self._follow(key, squares.device)
        super().add_routed(key, routing, squares, counts)

    def first_nonfinite(self) -> str | None:
        """One check per device (keys grouped by where they live)."""
        by_device: dict[torch.device, list[str]] = {}
        for key in sorted(self.sums):
            by_device.setdefault(self.sums[key].device, []).append(key)
        bad = []
        for keys in by_device.values():
            flags = torch.stack([torch.isfinite(self.sums[k]).all() for k in keys]).cpu().tolist()
            bad += [k for k, ok in zip(keys, flags) if not ok]
        return min(bad) if bad else None


def parse_max_memory(text: str | None) -> dict | None:
    """'0=20GiB,cpu=60GiB' → {0: '20GiB', 'cpu': '60GiB'} (accelerate's max_memory)."""
    if not text:
        return None
    limits: dict = {}
    for item in text.split(","):
        device, sep, amount = item.partition("=")
        if not sep or not device.strip() or not amount.strip():
            raise ModelLoadError(f"--max-memory {text!r}: expected DEVICE=AMOUNT[,DEVICE=AMOUNT...], "
                                 "e.g. 0=20GiB,cpu=60GiB")
        device = device.strip()
        limits[int(device) if device.isdigit() else device] = amount.strip()
    return limits


def load_device_mapped(source: ModelSource, device_map: str, dtype: str, trust_remote_code: bool,
                       max_memory: dict | None, resources: ExitStack):
    """from_pretrained(device_map=...) with a temporary offload folder that lives as long as `resources`."""
    from imatrix.model.loading import model_class_for

    offload_folder = resources.enter_context(tempfile.TemporaryDirectory(prefix="imatrix-offload-"))
    try:
        model = model_class_for(source.folder, source.gguf_file, trust_remote_code).from_pretrained(
            str(source.folder), gguf_file=source.gguf_file, dtype=torch_dtype(dtype), device_map=device_map,
            max_memory=max_memory, offload_folder=offload_folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelLoadError(f"{source.label}: cannot load the model with --device-map {device_map}: "
                             f"{error}") from error
    model.eval()
    model.config.use_cache = False
    return model


class DeviceMapRunner:
    """--device-map auto|...: accelerate places the weights over GPUs, CPU and disk; accumulators follow the inputs."""

    name = "device_map"

    def refusal(self, request: RunRequest) -> str | None:
        if World.from_env().active:
            return "--device-map: not supported under torchrun (each rank holds a whole model); drop one"
        return None

    def load(self, request: RunRequest, resources: ExitStack) -> torch.nn.Module:
        return load_device_mapped(request.source, request.device_map, request.model.dtype,
                                  request.model.trust_remote_code, parse_max_memory(request.max_memory), resources)

    def accumulators(self, request: RunRequest, model: torch.nn.Module,
                     shapes: dict[str, tuple[int, int]]) -> Accumulators:
        return PlacedAccumulators(shapes, "cpu", request.accumulator_dtype)

    def run(self, request: RunRequest, model: torch.nn.Module, plan: Plan, stats: Accumulators,
            on_chunks_done: Callable[[int], None]) -> Perplexity | None:
        return ResidentRunner().run(request, model, plan, stats, on_chunks_done)

    def column_energy(self, plan: Plan) -> dict[str, np.ndarray]:
        """Each weight's energies computed where it lives: its device, or accelerate's cpu/disk offload copy."""
        return column_energy(plan, parameter=placed_parameter)

    def is_writer(self) -> bool:
        return True


def placed_parameter(module: torch.nn.Module, name: str) -> torch.Tensor:
    """A module's parameter, or (offloaded: left on the meta device) the copy accelerate's hook loads it from."""
    value = getattr(module, name)
    if value.device.type != "meta":
        return value
    hook = getattr(module, "_hf_hook", None)
    weights = getattr(hook, "weights_map", None)
    if weights is None:
        raise ModelLoadError(f"{type(module).__name__}.{name} is offloaded, and accelerate's hook holds no copy of it")
    return weights[name]
