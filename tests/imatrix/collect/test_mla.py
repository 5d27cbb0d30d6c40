"""DeepSeek MLA: with the hooks installed the model computes the same logits, attn_k_b's sums are each head's q_nope
(q_b_proj's output before RoPE) and attn_v_b's the per-head attention output in the latent space, Σ_s P[t,s]·c_kv[s],
both computed here directly from transformers' own attention weights; the column energies are kv_b_proj's rows.
(Whole-model conformance against llama-imatrix: tests/conformance.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imatrix.collect import mla
from imatrix.collect.accumulators import column_sums
from tests.imatrix.collect.test_scaled_experts import RecordingStats

HEADS, NOPE, ROPE, V_HEAD, RANK, TOKENS = 2, 8, 4, 6, 10, 7


@pytest.fixture
def model():
    import transformers as tf

    config = tf.DeepseekV3Config(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=HEADS, num_key_value_heads=HEADS, q_lora_rank=12,
                                 kv_lora_rank=RANK, qk_nope_head_dim=NOPE, qk_rope_head_dim=ROPE, v_head_dim=V_HEAD,
                                 head_dim=ROPE, first_k_dense_replace=1, n_routed_experts=2, num_experts_per_tok=1,
                                 n_group=1, topk_group=1, moe_intermediate_size=8)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return tf.DeepseekV3ForCausalLM(config).double().eval()


def test_hooks_keep_the_logits_and_feed_direct_q_nope_and_latent_attention_sums(model):
    attention = model.model.layers[0].self_attn
    assert mla.is_mla_attention(attention) and not mla.is_mla_attention(torch.nn.Linear(2, 2))
    target = mla.mla_target("model.layers.0.self_attn", attention, 0)
    assert target.shapes() == {"blk.0.attn_k_b.weight": (1, HEADS * NOPE), "blk.0.attn_v_b.weight": (1, HEADS * RANK)}
    ids = torch.arange(3, 3 + TOKENS)[None]
    seen = {}
    probes = [attention.q_b_proj.register_forward_hook(lambda m, a, out: seen.__setitem__("q", out)),
              attention.kv_a_layernorm.register_forward_hook(lambda m, a, out: seen.__setitem__("c_kv", out))]
    with torch.no_grad():
        plain = model(ids, output_attentions=True)
    for probe in probes:
        probe.remove()
    stats = RecordingStats(target.shapes())
    handles = mla.install(target, stats, column_sums)
    with torch.no_grad():
        hooked = model(ids)
    for handle in handles:
        handle.remove() if hasattr(handle, "remove") else handle()  # hook handles, then the undo callable
    assert "expand_kv" not in attention.__dict__
    assert torch.allclose(hooked.logits, plain.logits, rtol=1e-10, atol=1e-10)
    q_nope = seen["q"].reshape(TOKENS, HEADS, NOPE + ROPE)[:, :, :NOPE].reshape(TOKENS, -1)
    weights = plain.attentions[0][0]  # (heads, T, T), softmax included
    latent = torch.einsum("hts,sr->thr", weights, seen["c_kv"][0]).reshape(TOKENS, -1)
    for key, x in (("blk.0.attn_k_b.weight", q_nope), ("blk.0.attn_v_b.weight", latent)):
        assert stats.counts[key].tolist() == [TOKENS]
        assert torch.allclose(stats.sums[key][0, 0], (x ** 2).sum(0), rtol=1e-9)
        assert torch.allclose(stats.sums[key][0, 1], x.sum(0), rtol=1e-9)


def test_column_energy_splits_kv_b_proj_per_head(model):
    attention = model.model.layers[0].self_attn
    target = mla.mla_target("model.layers.0.self_attn", attention, 0)
    energy = mla.column_energy(target, lambda module, name: getattr(module, name))
    weight = attention.kv_b_proj.weight.detach().numpy().reshape(HEADS, NOPE + V_HEAD, RANK)
    # attn_k_b is stored transposed (its inputs are q_nope's values): energy per (head, nope row) over the rank
    assert np.allclose(energy["blk.0.attn_k_b.weight"][0], (weight[:, :NOPE] ** 2).sum(2).ravel())
    assert np.allclose(energy["blk.0.attn_v_b.weight"][0], (weight[:, NOPE:] ** 2).sum(1).ravel())
