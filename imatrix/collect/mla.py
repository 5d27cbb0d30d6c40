"""DeepSeek-V2/V3 multi-head latent attention (MLA; also Kimi K2): the two imatrix entries no HF linear sees.

llama.cpp's converter splits kv_b_proj into attn_k_b (per head, transposed) and attn_v_b (conversion/deepseek.py),
and llama.cpp's graph multiplies them in the absorbed form (src/models/deepseek2.cpp, llama-graph.cpp build_attn_mha):
  * attn_k_b (ggml [qk_nope, kv_lora_rank, n_head]) by each head's q_nope: the first qk_nope values of the head's
    query, before RoPE. Entry: n_head slices of qk_nope values, one count (plain MUL_MAT of a 3-D weight, spec §1.4).
  * attn_v_b (ggml [kv_lora_rank, v_head, n_head]) by each head's attention output in the latent space, Σ_s P[t,s]
    c_kv[s] with c_kv the normed compressed KV: n_head slices of kv_lora_rank values, one count.
Here q_nope is read from q_b_proj's (q_proj's) output, and the latent attention output comes from the model's own
attention call: the value states get c_kv appended per head, o_proj's pre-hook splits it off again, so the attention
(mask, softmax, scaling) is exactly transformers' and computed once. kv_b_proj itself is not an entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gguf import MODEL_ARCH, MODEL_TENSOR, TENSOR_NAMES
from torch import nn

MLA_ARCHS = frozenset({MODEL_ARCH.DEEPSEEK2})


@dataclass
class MlaTarget:
    module_name: str
    module: nn.Module  # the attention module (kv_b_proj, kv_a_layernorm, expand_kv, o_proj, q_b_proj or q_proj)
    k_b_key: str
    v_b_key: str
    n_head: int
    qk_nope: int
    qk_head: int
    v_head: int
    kv_rank: int

    @property
    def query_module(self) -> nn.Module:
        return self.module.q_proj if self.module.q_proj is not None else self.module.q_b_proj

    def shapes(self) -> dict[str, tuple[int, int]]:
        return {self.k_b_key: (1, self.n_head * self.qk_nope), self.v_b_key: (1, self.n_head * self.kv_rank)}


def is_mla_attention(module: nn.Module) -> bool:
    return all(hasattr(module, name) for name in ("kv_b_proj", "kv_a_layernorm", "expand_kv", "qk_nope_head_dim"))


def mla_target(name: str, module: nn.Module, block: int) -> MlaTarget:
    keys = [TENSOR_NAMES[kind].format(bid=block) + ".weight" for kind in (MODEL_TENSOR.ATTN_K_B, MODEL_TENSOR.ATTN_V_B)]
    return MlaTarget(name, module, *keys, module.num_heads, module.qk_nope_head_dim, module.qk_head_dim,
                     module.v_head_dim, module.kv_lora_rank)


def install(target: MlaTarget, stats, column_sums) -> list:
    """Hooks feeding attn_k_b and attn_v_b; returns handles/undo callables (removed by accumulators.collecting)."""
    module = target.module

    def query_hook(_module, _args, output):
        q_nope = output.reshape(-1, target.n_head, target.qk_head)[:, :, : target.qk_nope]
        flat = q_nope.reshape(-1, target.n_head * target.qk_nope)
        stats.add_rows(target.k_b_key, 0, column_sums(flat, stats.dtype), flat.shape[0])

    original_expand = module.expand_kv

    def expand_kv(kv_nope, k_rot):
        key_states, value_states = original_expand(kv_nope, k_rot)
        latent = kv_nope.expand(-1, target.n_head, -1, -1).to(value_states.dtype)
        return key_states, torch.cat([value_states, latent], dim=-1)

    def o_proj_pre_hook(_module, args, kwargs):
        x = args[0] if args else kwargs.pop("input")
        heads = x.reshape(*x.shape[:-1], target.n_head, target.v_head + target.kv_rank)
        latent = heads[..., target.v_head:].reshape(-1, target.n_head * target.kv_rank)
        stats.add_rows(target.v_b_key, 0, column_sums(latent, stats.dtype), latent.shape[0])
        return (heads[..., : target.v_head].reshape(*x.shape[:-1], -1), *args[1:]), kwargs

    module.expand_kv = expand_kv
    handles = [target.query_module.register_forward_hook(query_hook),
               module.o_proj.register_forward_pre_hook(o_proj_pre_hook, with_kwargs=True, prepend=True)]
    return handles + [lambda: module.__dict__.pop("expand_kv", None)]


def column_energy(target: MlaTarget, parameter) -> dict[str, np.ndarray]:
    """‖W[:, i]‖² of attn_k_b / attn_v_b as the converter writes them, from kv_b_proj's rows of each head."""
    weight = parameter(target.module.kv_b_proj, "weight").detach().float()
    per_head = weight.view(target.n_head, target.qk_nope + target.v_head, target.kv_rank)
    k_b, v_b = per_head[:, : target.qk_nope], per_head[:, target.qk_nope:]  # (H, qk_nope, r), (H, v_head, r)
    return {target.k_b_key: k_b.square().sum(dim=2).reshape(1, -1).cpu().numpy(),  # k_b transposed: ne0 = qk_nope
            target.v_b_key: v_b.square().sum(dim=1).reshape(1, -1).cpu().numpy()}  # ne0 = kv_lora_rank
