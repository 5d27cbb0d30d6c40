"""Experts that transformers runs on router-scaled copies of every token (Llama 4's Llama4TextExperts).

Llama4TextMoe multiplies each token by its sigmoid router score per expert (zero for the experts not selected) and
runs every expert over all copies with bmm. llama.cpp's llama4 graph scales the routed tokens the same way before
the expert matmuls (build_moe_ffn with weight_before_ffn, src/models/llama4.cpp) but only for the selected experts
(MUL_MAT_ID). The copies of unselected tokens are exactly zero, and so are their gate/up outputs and down inputs, so
summing x² over all copies gives llama.cpp's per-expert sums; the counts are the non-zero copies (routed tokens).
The experts' forward is replaced by the same three matmuls with the two inputs accumulated on the way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

SCALED_COPY_EXPERTS = ("Llama4TextExperts",)  # class names: gate_up_proj [E, D, 2F], down_proj [E, F, D]


@dataclass
class ScaledExpertsTarget:
    module_name: str
    module: nn.Module
    up_keys: list[str]  # [gate, up] (split by the converter) or [gate_up]
    down_key: str
    n_expert: int
    hidden: int
    intermediate: int

    def shapes(self) -> dict[str, tuple[int, int]]:
        shapes = {key: (self.n_expert, self.hidden) for key in self.up_keys}
        shapes[self.down_key] = (self.n_expert, self.intermediate)
        return shapes


def is_scaled_copy_experts(module: nn.Module) -> bool:
    return type(module).__name__ in SCALED_COPY_EXPERTS


def scaled_experts_target(name: str, module: nn.Module, naming) -> ScaledExpertsTarget:
    up_keys, down_key = naming.fused_experts_keys(name)
    n_expert, hidden, double_ffn = module.gate_up_proj.shape
    return ScaledExpertsTarget(name, module, up_keys, down_key, n_expert, hidden, double_ffn // 2)


def install(target: ScaledExpertsTarget, stats) -> list:
    """Replace the experts' forward by one that also accumulates both matmul inputs; returns the undo callable."""
    module = target.module

    def add(key: str, x: torch.Tensor, counts: torch.Tensor) -> None:  # x: (E, T, columns)
        values = x.to(stats.dtype)
        sums = torch.stack((values.square().sum(dim=1), values.sum(dim=1)), dim=1)  # (E, 2, columns): Σx², Σx
        for expert in range(target.n_expert):
            stats.add_rows(key, expert, sums[expert], counts[expert])

    def forward(hidden_states: torch.Tensor) -> torch.Tensor:
        x = hidden_states.view(target.n_expert, -1, target.hidden)
        counts = (x != 0).any(dim=-1).sum(dim=1)  # routed copies: the others are scaled by exactly 0
        for key in target.up_keys:
            add(key, x, counts)
        gate, up = torch.bmm(x, module.gate_up_proj).chunk(2, dim=-1)
        inner = up * module.act_fn(gate)
        add(target.down_key, inner, counts)
        return torch.bmm(inner, module.down_proj).view(-1, target.hidden)

    module.forward = forward
    return [lambda: module.__dict__.pop("forward", None)]


def column_energy(target: ScaledExpertsTarget, parameter) -> dict[str, np.ndarray]:
    """Per expert ‖W[:, i]‖² of gate/up (rows = FFN outputs) and down (rows = hidden outputs)."""
    gate_up = parameter(target.module, "gate_up_proj").detach().float()  # (E, D, 2F): columns are the inputs D
    down = parameter(target.module, "down_proj").detach().float()  # (E, F, D)
    halves = [gate_up] if len(target.up_keys) == 1 else list(gate_up.chunk(2, dim=2))
    energy = {key: half.square().sum(dim=2).cpu().numpy() for key, half in zip(target.up_keys, halves)}
    energy[target.down_key] = down.square().sum(dim=2).cpu().numpy()
    return energy
