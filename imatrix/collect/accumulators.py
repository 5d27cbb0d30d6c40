"""What is accumulated: Σx², Σx per input column and token-row counts of every linear input, through forward hooks.

Spec §1.4 (dense) and §1.5 (MoE). The runner decides how the model is run; this module only plans which modules feed
which imatrix key (`plan_targets`), keeps the device-side sums (`Accumulators`) and installs/removes the hooks
(`collecting`). Nothing here synchronises with the host inside a hook: row counts come from shapes, MoE counts stay
on the device.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from gguf import MODEL_TENSOR
from torch import nn

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry
from imatrix.collect import mla, scaled_experts
from imatrix.model.naming import BLOCK_INDEX_RE, NamingError, TensorNaming, is_collected_key, unmapped_error

BLOCK_RE = re.compile(r"(^|\.)(layers|h|blocks|block)\.\d+\.")
ROUTER_KINDS = (MODEL_TENSOR.FFN_GATE_INP, MODEL_TENSOR.FFN_GATE_INP_SHEXP)


@dataclass
class DenseTarget:
    """A module whose (last-dim) input feeds `key` row `row` (row 0 for dense, e for a per-expert Linear)."""

    module_name: str
    module: nn.Module
    key: str
    ne0: int
    n_mat: int = 1
    row: int = 0
    hooked: bool = True  # False for a second module reading the same input into the same key (fused q/k/v)
    out_rows: torch.Tensor | None = None  # the weight rows this key holds when the converter splits the rows


@dataclass
class ExpertsTarget:
    """A transformers fused experts module: 3-D gate_up_proj [E, 2F, D] and down_proj [E, D, F]."""

    module_name: str
    module: nn.Module
    up_keys: list[str]
    down_key: str
    n_expert: int
    hidden: int
    intermediate: int


@dataclass
class Plan:
    """Every hooked module and the imatrix keys it feeds; `skipped` lists unmapped block linears (--skip-unmapped)."""

    dense: list[DenseTarget] = field(default_factory=list)
    experts: list[ExpertsTarget] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    multimodal: list[str] = field(default_factory=list)  # tower/projector linears: they go to the mmproj GGUF
    mla: list[mla.MlaTarget] = field(default_factory=list)  # DeepSeek MLA attention: attn_k_b / attn_v_b (collect.mla)
    scaled_experts: list[scaled_experts.ScaledExpertsTarget] = field(default_factory=list)  # Llama 4 experts

    def shapes(self) -> dict[str, tuple[int, int]]:
        """key → (n_mat, ne0) of its entry."""
        shapes = {t.key: (t.n_mat, t.ne0) for t in self.dense}
        for t in self.experts:
            shapes.update({k: (t.n_expert, t.hidden) for k in t.up_keys})
            shapes[t.down_key] = (t.n_expert, t.intermediate)
        for t in [*self.mla, *self.scaled_experts]:
            shapes.update(t.shapes())
        return shapes


def _experts_dims(module: nn.Module) -> tuple[int, int, int] | None:
    """(n_expert, hidden, intermediate) for a fused experts module, None for anything else."""
    gate_up, down = getattr(module, "gate_up_proj", None), getattr(module, "down_proj", None)
    if not (isinstance(gate_up, nn.Parameter) and isinstance(down, nn.Parameter) and gate_up.dim() == down.dim() == 3):
        return None
    if getattr(module, "is_transposed", False):  # [E, D, 2F] / [E, F, D]
        return gate_up.shape[0], gate_up.shape[1], down.shape[1]
    return gate_up.shape[0], gate_up.shape[2], down.shape[2]


def _is_tied_head(model: nn.Module, module: nn.Module) -> bool:
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return embeddings is not None and getattr(embeddings, "weight", None) is getattr(module, "weight", None)


def plan_targets(model: nn.Module, naming: TensorNaming, process_output: bool = False,
                 skip_unmapped: bool = False) -> Plan:
    """Which modules to hook for which keys; raises NamingError for an unmapped linear inside a block."""
    plan = Plan()
    for name, module in model.named_modules():
        if naming.is_multimodal(name):
            if isinstance(module, nn.Linear):
                plan.multimodal.append(name)
            continue
        if naming.arch in mla.MLA_ARCHS and mla.is_mla_attention(module):
            plan.mla.append(mla.mla_target(name, module, int(BLOCK_INDEX_RE.search(name)[1])))
            continue
        if naming.arch in mla.MLA_ARCHS and name.endswith(".kv_b_proj"):
            continue  # the converter writes it as attn_k_b + attn_v_b, fed by the MLA target above
        if scaled_experts.is_scaled_copy_experts(module):
            plan.scaled_experts.append(scaled_experts.scaled_experts_target(name, module, naming))
            continue
        dims = _experts_dims(module)
        if dims is not None:
            up_keys, down_key = naming.fused_experts_keys(name)
            plan.experts.append(ExpertsTarget(name, module, up_keys, down_key, *dims))
            continue
        in_block = BLOCK_RE.search(name) is not None
        if isinstance(module, nn.Linear):
            per_expert = naming.per_expert(name)
            if per_expert is not None:
                key, expert = per_expert
                n_expert = _count_experts(model, name)
                plan.dense.append(DenseTarget(name, module, key, module.in_features, n_expert, expert))
                continue
            keys = naming.keys(name)  # several where the converter splits the rows (model.converter_rules)
            key = keys[0] if keys else None
            if key is not None and is_collected_key(key, process_output):
                if key == "output.weight" and _is_tied_head(model, module):
                    keys = ["token_embd.weight"]  # a tied head is token_embd in the output matmul (b11434 collects it)
                rows = naming.split_rows(name, module.out_features) if len(keys) > 1 else [None]
                plan.dense.extend(DenseTarget(name, module, split_key, module.in_features, out_rows=part)
                                  for split_key, part in zip(keys, rows))
            elif in_block and not (key or "").startswith("blk."):
                if not skip_unmapped:
                    raise unmapped_error(name, module, naming.arch)
                plan.skipped.append(name)
            continue
        weight = getattr(module, "weight", None)
        if in_block and isinstance(weight, nn.Parameter) and weight.dim() == 2 and naming.kind(name) in ROUTER_KINDS:
            plan.dense.append(DenseTarget(name, module, naming.key(name), weight.shape[1]))  # router: F.linear(x, W)
    _check_plan(plan)
    return plan


def _count_experts(model: nn.Module, linear_name: str) -> int:
    prefix = linear_name.rsplit(".", 2)[0]
    experts = model.get_submodule(prefix)
    return len(experts) if isinstance(experts, (nn.ModuleList, nn.ModuleDict)) else len(list(experts.children()))


def _check_plan(plan: Plan) -> None:
    """Modules sharing a key must agree on its shape; a second module on the same key row is not hooked again."""
    shapes: dict[str, tuple[int, int]] = {}
    seen_rows: set[tuple[str, int]] = set()
    for target in plan.dense:
        shape = (target.n_mat, target.ne0)
        if shapes.setdefault(target.key, shape) != shape:
            raise NamingError(f"{target.module_name}: {target.key} already has shape {shapes[target.key]}, not {shape}")
        target.hooked = (target.key, target.row) not in seen_rows
        seen_rows.add((target.key, target.row))


SQUARES, VALUES = 0, 1  # the two planes of Accumulators.sums[key]: Σx² (llama.cpp's in_sum2) and Σx (in_sum)


class Accumulators:
    """Device-side sums (n_mat, 2, ne0) and counts (n_mat,) per imatrix key.

    sums[key][:, SQUARES] is Σx², sums[key][:, VALUES] is Σx (b11434's activation sums). One tensor per key holds both,
    so whatever moves, copies, reduces or checkpoints the accumulators (runners, checkpoints) carries Σx along.
    """

    def __init__(self, shapes: dict[str, tuple[int, int]], device: torch.device | str,
                 dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        self.sums = {k: torch.zeros((n_mat, 2, ne0), dtype=dtype, device=device) for k, (n_mat, ne0) in shapes.items()}
        self.counts = {k: torch.zeros(shape[0], dtype=torch.int64, device=device) for k, shape in shapes.items()}

    def add_rows(self, key: str, row: int, column_sums: torch.Tensor, n_rows: int) -> None:
        """column_sums (2, ne0): [Σx², Σx] over n_rows token rows."""
        self.sums[key][row].add_(column_sums)
        self.counts[key][row].add_(n_rows)

    def add_routed(self, key: str, routing: torch.Tensor, rows: torch.Tensor, counts: torch.Tensor) -> None:
        """routing (S, E) multiplicities × rows (S, 2·D) = [x², x]: every (token, expert) pair adds to expert e."""
        self.sums[key].view(self.sums[key].shape[0], -1).addmm_(routing.t(), rows)
        self.counts[key].add_(counts)

    def first_nonfinite(self) -> str | None:
        """Name of the first key holding a non-finite sum (one host sync for all keys), or None."""
        keys = sorted(self.sums)
        if not keys:
            return None
        flags = torch.stack([torch.isfinite(self.sums[k]).all() for k in keys]).cpu()
        bad = [k for k, ok in zip(keys, flags.tolist()) if not ok]
        return bad[0] if bad else None

    def to_imatrix(self, datasets: list[str], chunk_count: int, chunk_size: int) -> Imatrix:
        entries = {}
        for key in sorted(self.sums):
            both = self.sums[key].float().cpu().numpy()
            entries[key] = ImatrixEntry(both[:, SQUARES], self.counts[key].cpu().numpy().astype(np.float32),
                                        both[:, VALUES])
        return Imatrix(entries=entries, datasets=list(datasets), chunk_count=chunk_count, chunk_size=chunk_size)


def _norm_reduction(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """GPU: vector_norm(dtype=...) squared is the cheapest column reduction measured on an H100 (ANCHORS.md); Σx is a
    plain dim-0 sum in `dtype` (no copy of x)."""
    return torch.stack((torch.linalg.vector_norm(x, ord=2, dim=0, dtype=dtype).square(), x.sum(dim=0, dtype=dtype)))


def _vecdot_reduction(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """CPU: per-column dot products (vecdot over the row axis), no x² temporary, and Σx as ones @ x (a BLAS GEMV);
    ATen's dim-0 norm/sum reductions measured 5-20x slower on CPU."""
    x = x.to(dtype)
    columns = x.t()
    ones = torch.ones(x.shape[0], dtype=dtype, device=x.device)
    return torch.stack((torch.linalg.vecdot(columns, columns, dim=-1), ones @ x))


REDUCTION_BY_DEVICE = {"cpu": _vecdot_reduction}


def column_sums(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(2, columns): Σx² and Σx over the rows of a 2-D tensor, accumulated in `dtype`, with the device's cheapest
    reductions (one kernel pass each, in the hook, no host sync)."""
    return REDUCTION_BY_DEVICE.get(x.device.type, _norm_reduction)(x, dtype)


def routing_matrix(top_k_index: torch.Tensor, n_expert: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, experts) multiplicities of the selected experts and the per-expert pair counts."""
    flat = top_k_index.reshape(top_k_index.shape[0], -1)
    one_hot = nn.functional.one_hot(flat.long(), n_expert).sum(dim=1)
    return one_hot.to(dtype), one_hot.sum(dim=0)


class _SharedInput:
    """Reuses the column sums when several linears read the same input tensor (q/k/v, gate/up)."""

    def __init__(self) -> None:
        self.tensor: torch.Tensor | None = None
        self.version = -1
        self.sums: torch.Tensor | None = None

    def column_sums(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        try:
            version = x._version
        except RuntimeError:  # inference-mode tensors have no version counter: never reuse, always recompute
            return column_sums(x.reshape(-1, x.shape[-1]), dtype)
        if x is self.tensor and version == self.version and self.sums is not None:
            return self.sums
        self.tensor, self.version = x, version
        self.sums = column_sums(x.reshape(-1, x.shape[-1]), dtype)
        return self.sums

    def clear(self) -> None:
        self.tensor = self.sums = None


def _first_input(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else next(iter(kwargs.values()))


def _dense_hook(stats: Accumulators, target: DenseTarget, shared: _SharedInput):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = _first_input(args, kwargs)
        rows = x.numel() // x.shape[-1]  # from the shape: no host sync
        stats.add_rows(target.key, target.row, shared.column_sums(x, stats.dtype), rows)
    return hook


def _squares_and_values(x: torch.Tensor) -> torch.Tensor:
    """(S, D) → (S, 2·D) = [x², x], the row layout Accumulators.add_routed expects."""
    return torch.cat((x.square(), x), dim=1)


def _experts_pre_hook(stats: Accumulators, target: ExpertsTarget, routed: dict):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        values = list(args) + [kwargs[k] for k in ("hidden_states", "top_k_index", "top_k_weights") if k in kwargs]
        hidden, top_k_index = values[0], values[1]
        routing, counts = routing_matrix(top_k_index, target.n_expert, stats.dtype)
        rows = _squares_and_values(hidden.reshape(-1, target.hidden).to(stats.dtype))
        for key in target.up_keys:  # gate and up read the same token vector (spec §1.5)
            stats.add_routed(key, routing, rows, counts)
        routed[id(module)] = torch.sort(top_k_index.reshape(-1)).values  # row order of grouped_mm's expert inputs
    return hook


def _collecting_apply_gate(stats: Accumulators, target: ExpertsTarget, routed: dict, apply_gate):
    """Wraps the experts' gating so the down projection's per-(token, expert) input is accumulated."""
    def apply(gate_up_out: torch.Tensor) -> torch.Tensor:
        hidden = apply_gate(gate_up_out)
        sorted_ids = routed.pop(id(target.module))
        routing = nn.functional.one_hot(sorted_ids.long(), target.n_expert).to(stats.dtype)
        counts = routing.sum(dim=0).to(torch.int64)
        stats.add_routed(target.down_key, routing, _squares_and_values(hidden.to(stats.dtype)), counts)
        return hidden
    return apply


def _grouped_experts_forward(module: nn.Module):
    """Run the experts through transformers' grouped implementation, whose gate input rows are sorted by expert."""
    from transformers.integrations.moe import grouped_mm_experts_forward

    def forward(hidden_states, top_k_index, top_k_weights):
        return grouped_mm_experts_forward(module, hidden_states, top_k_index, top_k_weights)
    return forward


@contextmanager
def collecting(plan: Plan, stats: Accumulators) -> Iterator[None]:
    """Install all hooks of `plan` feeding `stats`; always removes them (and the experts overrides) on exit."""
    handles, overridden = [], []
    shared, routed = _SharedInput(), {}
    try:
        for target in (t for t in plan.dense if t.hooked):
            handles.append(target.module.register_forward_pre_hook(
                _dense_hook(stats, target, shared), with_kwargs=True))
        for target in plan.experts:
            module = target.module
            if not hasattr(module, "_apply_gate") or not getattr(module, "has_gate", True):
                raise NamingError(f"{target.module_name}: experts module {type(module).__name__} is not a transformers "
                                  "gated experts module (@use_experts_implementation); its down_proj input cannot be read")
            handles.append(module.register_forward_pre_hook(_experts_pre_hook(stats, target, routed), with_kwargs=True))
            # under an accelerate device_map, module.forward is accelerate's weight-loading wrapper around _old_forward
            forward = "_old_forward" if hasattr(module, "_hf_hook") else "forward"
            overridden.append((module, {a: module.__dict__.get(a) for a in ("_apply_gate", forward)}))
            module._apply_gate = _collecting_apply_gate(stats, target, routed, module._apply_gate)
            setattr(module, forward, _grouped_experts_forward(module))
        for target in plan.mla:
            handles.extend(mla.install(target, stats, column_sums))
        for target in plan.scaled_experts:
            handles.extend(scaled_experts.install(target, stats))
        yield
    finally:
        for handle in handles:
            handle() if callable(handle) else handle.remove()
        for module, saved in overridden:
            for attribute, value in saved.items():
                module.__dict__.pop(attribute, None)
                if value is not None:
                    module.__dict__[attribute] = value
        shared.clear()
        routed.clear()


def loaded_parameter(module: nn.Module, name: str) -> torch.Tensor:
    return getattr(module, name)


def column_energy(plan: Plan, energy: dict[str, np.ndarray] | None = None, within=None,
                  parameter=loaded_parameter) -> dict[str, np.ndarray]:
    """‖W[:, i]‖² over output rows per key (and expert), float32, from the weights as loaded (hybrid importance).

    `within(module_name)`: only those modules (a layer while --offload sequential has it loaded), added to `energy`;
    `parameter(module, name)`: where a weight is read from (a device map's offloaded copy), computed where it lives.
    """
    energy = {} if energy is None else energy
    shapes = plan.shapes()
    inside = within or (lambda name: True)
    with torch.no_grad():
        for target in (t for t in plan.dense if inside(t.module_name)):
            rows = energy.setdefault(target.key, np.zeros(shapes[target.key], dtype=np.float32))
            weight = parameter(target.module, "weight").detach()
            if target.out_rows is not None:
                weight = weight[target.out_rows.to(weight.device)]  # this key's rows of a converter row split
            rows[target.row] += weight.float().square().sum(dim=0).cpu().numpy()
        for target in (t for t in plan.experts if inside(t.module_name)):
            module = target.module
            gate_up = parameter(module, "gate_up_proj").detach().float()
            down = parameter(module, "down_proj").detach().float()
            if getattr(module, "is_transposed", False):
                gate_up, down = gate_up.transpose(1, 2), down.transpose(1, 2)
            halves = [gate_up] if len(target.up_keys) == 1 else list(gate_up.chunk(2, dim=1))
            for key, weight in zip(target.up_keys, halves):
                energy[key] = weight.square().sum(dim=1).cpu().numpy()
            energy[target.down_key] = down.square().sum(dim=1).cpu().numpy()
        for target in (t for t in plan.mla if inside(t.module_name)):
            energy.update(mla.column_energy(target, parameter))
        for target in (t for t in plan.scaled_experts if inside(t.module_name)):
            energy.update(scaled_experts.column_energy(target, parameter))
    return energy
