"""Llama 4's router-scaled expert copies: with the hooks installed the experts compute what transformers computes,
each expert's Σx² / Σx / count equal a direct computation over its routed (non-zero) copies, and the column energies
are the weights' own. (Whole-model conformance against llama-imatrix: tests/conformance.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imatrix.collect import scaled_experts

E, D, F, T = 3, 8, 6, 5


class RecordingStats:
    """What install() feeds, per key and expert row: summed [Σx², Σx] and the counts."""

    dtype = torch.float64

    def __init__(self, shapes):
        self.sums = {key: torch.zeros(rows, 2, cols, dtype=torch.float64) for key, (rows, cols) in shapes.items()}
        self.counts = {key: torch.zeros(rows, dtype=torch.int64) for key, (rows, _) in shapes.items()}

    def add_rows(self, key, row, column_sums, n_rows):
        self.sums[key][row] += column_sums
        self.counts[key][row] += n_rows


class Naming:
    def fused_experts_keys(self, name):
        return ["blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight"], "blk.0.ffn_down_exps.weight"


@pytest.fixture
def experts():
    import transformers as tf
    from transformers.models.llama4.modeling_llama4 import Llama4TextExperts

    config = tf.Llama4TextConfig(hidden_size=D, intermediate_size=F, num_local_experts=E)
    torch.manual_seed(0)
    module = Llama4TextExperts(config).double()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_()
    return module


def test_hooked_experts_compute_the_same_output_and_direct_sums(experts):
    assert scaled_experts.is_scaled_copy_experts(experts) and not scaled_experts.is_scaled_copy_experts(torch.nn.Linear(2, 2))
    target = scaled_experts.scaled_experts_target("model.layers.0.feed_forward.experts", experts, Naming())
    assert target.shapes() == {"blk.0.ffn_gate_exps.weight": (E, D), "blk.0.ffn_up_exps.weight": (E, D),
                               "blk.0.ffn_down_exps.weight": (E, F)}
    torch.manual_seed(1)
    copies = torch.randn(E, T, D, dtype=torch.float64)
    routed = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    copies = copies * routed[..., None]  # router score 0: the copy is exactly zero
    expected_out = experts(copies.reshape(-1, D))
    stats = RecordingStats(target.shapes())
    undo = scaled_experts.install(target, stats)
    out = experts(copies.reshape(-1, D))
    assert torch.allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    for undo_one in undo:
        undo_one()
    assert "forward" not in experts.__dict__
    gate, up = torch.bmm(copies, experts.gate_up_proj).chunk(2, dim=-1)
    inner = up * experts.act_fn(gate)
    assert stats.counts["blk.0.ffn_up_exps.weight"].tolist() == [3, 0, 5]
    assert stats.counts["blk.0.ffn_down_exps.weight"].tolist() == [3, 0, 5]
    for key, x in (("blk.0.ffn_gate_exps.weight", copies), ("blk.0.ffn_up_exps.weight", copies),
                   ("blk.0.ffn_down_exps.weight", inner)):
        assert torch.allclose(stats.sums[key][:, 0], (x ** 2).sum(1)) and torch.allclose(stats.sums[key][:, 1], x.sum(1))
    assert stats.sums["blk.0.ffn_down_exps.weight"][1].abs().max() == 0  # no token routed to expert 1


def test_column_energy_is_the_weights_squared_norms(experts):
    target = scaled_experts.scaled_experts_target("m", experts, Naming())
    energy = scaled_experts.column_energy(target, lambda module, name: getattr(module, name))
    gate_up, down = experts.gate_up_proj.detach().numpy(), experts.down_proj.detach().numpy()
    assert np.allclose(energy["blk.0.ffn_gate_exps.weight"], (gate_up[:, :, :F] ** 2).sum(2), rtol=1e-6)
    assert np.allclose(energy["blk.0.ffn_up_exps.weight"], (gate_up[:, :, F:] ** 2).sum(2), rtol=1e-6)
    assert np.allclose(energy["blk.0.ffn_down_exps.weight"], (down ** 2).sum(2), rtol=1e-6)
    assert energy["blk.0.ffn_down_exps.weight"].shape == (E, F)
