"""Hook statistics equal a direct computation on independently captured inputs (dense and MoE)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imatrix.collect.accumulators import SQUARES, VALUES, Accumulators, collecting, column_energy, plan_targets
from imatrix.model.naming import TensorNaming
from imatrix.runners.base import NonFiniteError, RunOptions
from imatrix.runners.resident import run_resident
from tests.imatrix.tiny_models import FAMILIES, TOP_K, VOCAB, build


def _collect(model, ids, dtype=torch.float64, **plan_options):
    plan = plan_targets(model, TensorNaming.for_config(model.config, **plan_options))
    stats = Accumulators(plan.shapes(), "cpu", dtype)
    with torch.no_grad(), collecting(plan, stats):
        logits = model(ids).logits
    return plan, stats, logits


def _capture_inputs(model, names):
    """Inputs of the named modules, recorded by plain hooks independent of the collector."""
    captured = {name: [] for name in names}
    handles = [model.get_submodule(name).register_forward_pre_hook(
        lambda module, args, kwargs, name=name: captured[name].append(
            (args[0] if args else next(iter(kwargs.values()))).detach().double().clone()), with_kwargs=True)
        for name in names]
    return captured, handles


@pytest.mark.parametrize("family", FAMILIES)
def test_dense_sums_equal_direct_computation_and_output_unchanged(family):
    model, _ = build(family)
    ids = torch.randint(0, VOCAB, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(ids).logits
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    dense = [t for t in plan.dense]
    captured, handles = _capture_inputs(model, [t.module_name for t in dense])
    _, stats, logits = _collect(model, ids)
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(logits, reference, rtol=0, atol=0)
    for target in dense:
        rows = torch.cat([x.reshape(-1, x.shape[-1]) for x in captured[target.module_name]])
        np.testing.assert_allclose(stats.sums[target.key][0, SQUARES].numpy(), rows.square().sum(0).numpy(), rtol=1e-10)
        np.testing.assert_allclose(stats.sums[target.key][0, VALUES].numpy(), rows.sum(0).numpy(), rtol=1e-9,
                                   atol=1e-12 * float(rows.abs().sum()))
        assert stats.counts[target.key].tolist() == [rows.shape[0]] == [3 * 16]


def test_hooks_and_overrides_removed_after_collection():
    model, _ = build("qwen3-moe")
    ids = torch.randint(0, VOCAB, (1, 8))
    plan, stats, _ = _collect(model, ids)
    before = {k: v.clone() for k, v in stats.sums.items()}
    with torch.no_grad():
        model(ids)
    assert all(torch.equal(before[k], stats.sums[k]) for k in before)
    experts = model.model.layers[0].mlp.experts
    assert "forward" not in experts.__dict__ and "_apply_gate" not in experts.__dict__
    assert not any(m._forward_pre_hooks for m in model.modules())


def _routing_qwen_mixtral(block, x):
    probs = torch.softmax(x @ block.gate.weight.double().t(), dim=-1)
    return torch.topk(probs, TOP_K, dim=-1).indices


@pytest.mark.parametrize("family", ["qwen3-moe", "mixtral", "gemma4"])
def test_moe_sums_equal_per_expert_direct_computation(family):
    model, _ = build(family)
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(ids).logits
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    names = [t.module_name for t in plan.experts]
    router_names = [n.rsplit(".", 1)[0] + (".router.proj" if family == "gemma4" else ".gate") for n in names]
    captured, handles = _capture_inputs(model, names + router_names)
    _, stats, logits = _collect(model, ids)
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(logits, reference, rtol=1e-5, atol=1e-5)  # grouped vs eager expert order
    torch.set_grad_enabled(False)
    try:
        _check_moe_targets(model, plan, captured, router_names, stats, family)
    finally:
        torch.set_grad_enabled(True)


def _check_moe_targets(model, plan, captured, router_names, stats, family):
    for target, router_name in zip(plan.experts, router_names):
        experts = target.module
        x = captured[target.module_name][0]
        router_in = captured[router_name][0].reshape(-1, x.shape[-1])
        if family == "gemma4":
            top_k = torch.topk(router_in @ model.get_submodule(router_name).weight.double().t(), TOP_K, dim=-1).indices
        else:
            top_k = _routing_qwen_mixtral(model.get_submodule(target.module_name.rsplit(".", 1)[0]), router_in)
        n_expert, hidden, inter = target.n_expert, target.hidden, target.intermediate
        up_sums, down_sums = np.zeros((n_expert, hidden)), np.zeros((n_expert, inter))
        up_values, down_values = np.zeros((n_expert, hidden)), np.zeros((n_expert, inter))
        counts = np.zeros(n_expert, dtype=np.int64)
        for token in range(x.shape[0]):
            for expert in top_k[token].tolist():
                gate_up = experts.gate_up_proj[expert].double() @ x[token]
                hidden_act = experts.act_fn(gate_up[:inter]) * gate_up[inter:]
                up_sums[expert] += (x[token] ** 2).numpy()
                down_sums[expert] += (hidden_act ** 2).numpy()
                up_values[expert] += x[token].numpy()
                down_values[expert] += hidden_act.numpy()
                counts[expert] += 1
        for key in target.up_keys:
            np.testing.assert_allclose(stats.sums[key][:, SQUARES].numpy(), up_sums, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(stats.sums[key][:, VALUES].numpy(), up_values, rtol=1e-9, atol=1e-9)
            assert stats.counts[key].tolist() == counts.tolist()
        np.testing.assert_allclose(stats.sums[target.down_key][:, SQUARES].numpy(), down_sums, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(stats.sums[target.down_key][:, VALUES].numpy(), down_values, rtol=1e-5, atol=1e-7)
        assert stats.counts[target.down_key].tolist() == counts.tolist()
        assert counts.sum() == x.shape[0] * TOP_K


def test_hand_computed_sums_ones_with_one_column_two():
    layer = nn.Linear(4, 3, bias=False)
    model = nn.Module()
    model.layers = nn.ModuleList([nn.Module()])
    model.layers[0].mlp = nn.Module()
    model.layers[0].mlp.down_proj = layer
    from imatrix.collect.accumulators import DenseTarget, Plan

    plan = Plan(dense=[DenseTarget("layers.0.mlp.down_proj", layer, "blk.0.ffn_down.weight", 4)])
    stats = Accumulators(plan.shapes(), "cpu")
    x = torch.ones(2, 5, 4)
    x[..., 2] = 2.0
    with collecting(plan, stats):
        layer(x)
        layer(x[:1, :3])  # a 3-row micro-batch is collected too (llama.cpp would skip < 16 rows)
    assert stats.sums["blk.0.ffn_down.weight"][:, SQUARES].tolist() == [[13.0, 13.0, 52.0, 13.0]]
    assert stats.sums["blk.0.ffn_down.weight"][:, VALUES].tolist() == [[13.0, 13.0, 26.0, 13.0]]
    assert stats.counts["blk.0.ffn_down.weight"].tolist() == [13]


class _PerExpertBlock(nn.Module):
    """Mixtral-style per-expert Linear list (older transformers): each expert sees only its routed tokens."""

    def __init__(self, n_expert=3, hidden=6, ffn=5):
        super().__init__()
        self.experts = nn.ModuleList()
        for _ in range(n_expert):
            expert = nn.Module()
            expert.w1, expert.w3, expert.w2 = nn.Linear(hidden, ffn), nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
            self.experts.append(expert)


def test_per_expert_linear_list_fills_stacked_rows():
    model = nn.Module()
    model.model = nn.Module()
    model.model.layers = nn.ModuleList([nn.Module()])
    model.model.layers[0].block_sparse_moe = _PerExpertBlock()
    from gguf import MODEL_ARCH

    plan = plan_targets(model, TensorNaming(MODEL_ARCH.LLAMA, 1))
    assert plan.shapes() == {"blk.0.ffn_gate_exps.weight": (3, 6), "blk.0.ffn_up_exps.weight": (3, 6),
                             "blk.0.ffn_down_exps.weight": (3, 5)}
    stats = Accumulators(plan.shapes(), "cpu", torch.float64)
    experts = model.model.layers[0].block_sparse_moe.experts
    routed = torch.randn(4, 6, dtype=torch.float64)
    with collecting(plan, stats):
        experts[1].to(torch.float64)
        h = experts[1].w1(routed) * experts[1].w3(routed)
        experts[1].w2(h)
    gate = stats.sums["blk.0.ffn_gate_exps.weight"]
    assert torch.equal(gate[0], torch.zeros(2, 6)) and torch.allclose(gate[1, SQUARES], routed.square().sum(0))
    assert torch.allclose(gate[1, VALUES], routed.sum(0))
    assert stats.counts["blk.0.ffn_up_exps.weight"].tolist() == [0, 4, 0]
    assert torch.allclose(stats.sums["blk.0.ffn_down_exps.weight"][1, SQUARES], h.detach().square().sum(0))
    assert torch.allclose(stats.sums["blk.0.ffn_down_exps.weight"][1, VALUES], h.detach().sum(0))


def test_float32_accumulator_close_to_float64():
    model, _ = build("qwen3")
    ids = torch.randint(0, VOCAB, (2, 16))
    _, stats64, _ = _collect(model, ids, torch.float64)
    _, stats32, _ = _collect(model, ids, torch.float32)
    for key in stats64.sums:
        np.testing.assert_allclose(stats32.sums[key][:, SQUARES].numpy(), stats64.sums[key][:, SQUARES].numpy(),
                                   rtol=1e-5)
        values = stats64.sums[key][:, VALUES].numpy()  # signed sums: compare against their scale
        np.testing.assert_allclose(stats32.sums[key][:, VALUES].numpy(), values, atol=1e-5 * np.abs(values).max())


def test_non_finite_activation_stops_with_tensor_and_chunk():
    model, _ = build("llama")
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    stats = Accumulators(plan.shapes(), "cpu")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[0, 0] = float("inf")
    chunks = np.random.default_rng(0).integers(0, VOCAB, (4, 8))
    with pytest.raises(NonFiniteError, match=r"blk\.1\.ffn_down\.weight.*chunks 0\.\.1"):
        run_resident(model, chunks, plan, stats, RunOptions(batch_size=2, progress=False))


def test_column_energy_dense_and_fused_experts():
    model, _ = build("qwen3-moe")
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    energy = column_energy(plan)
    q = model.model.layers[0].self_attn.q_proj.weight
    np.testing.assert_allclose(energy["blk.0.attn_q.weight"][0], q.square().sum(0).detach().numpy(), rtol=1e-6)
    experts = model.model.layers[1].mlp.experts
    inter = experts.down_proj.shape[2]
    gate = experts.gate_up_proj[:, :inter, :].square().sum(1).detach().numpy()
    up = experts.gate_up_proj[:, inter:, :].square().sum(1).detach().numpy()
    np.testing.assert_allclose(energy["blk.1.ffn_gate_exps.weight"], gate, rtol=1e-6)
    np.testing.assert_allclose(energy["blk.1.ffn_up_exps.weight"], up, rtol=1e-6)
    np.testing.assert_allclose(energy["blk.1.ffn_down_exps.weight"],
                               experts.down_proj.square().sum(1).detach().numpy(), rtol=1e-6)
    assert {k: v.shape for k, v in energy.items()} == plan.shapes()


def test_inference_mode_is_supported_without_input_reuse():
    model, _ = build("llama")
    ids = torch.randint(0, VOCAB, (2, 8))
    _, reference, _ = _collect(model, ids, torch.float64)
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    stats = Accumulators(plan.shapes(), "cpu", torch.float64)
    with torch.inference_mode(), collecting(plan, stats):
        model(ids)
    for key in reference.sums:
        torch.testing.assert_close(stats.sums[key], reference.sums[key])
