"""HF module names → GGUF keys: tiny models of six families give exactly their GGUF conversion's keys and lengths."""

from __future__ import annotations

import gguf
import pytest
from gguf import MODEL_ARCH

from imatrix.collect.accumulators import plan_targets
from imatrix.model.naming import NamingError, TensorNaming, arch_for_config, build_name_map, check_entry_lengths
from tests.imatrix.tiny_models import FAMILIES, build, expected_entries


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_keys_and_lengths_match_gguf_conversion(family):
    model, arch = build(family)
    naming = TensorNaming.for_config(model.config)
    assert naming.arch == arch
    shapes = plan_targets(model, naming).shapes()
    got = {key: rows * cols for key, (rows, cols) in shapes.items()}
    assert got == expected_entries(model, arch)


def test_arch_table_and_unknown_model_type():
    class Config:
        model_type = "mixtral"

    assert arch_for_config(Config) == MODEL_ARCH.LLAMA
    Config.model_type = "qwen3_moe"
    assert arch_for_config(Config) == MODEL_ARCH.QWEN3MOE
    Config.model_type = "not_a_model"
    with pytest.raises(NamingError, match="not_a_model"):
        arch_for_config(Config)


def test_per_expert_names_map_to_stacked_rows():
    naming = TensorNaming(MODEL_ARCH.LLAMA, 4)
    assert naming.per_expert("model.layers.2.block_sparse_moe.experts.5.w1") == ("blk.2.ffn_gate_exps.weight", 5)
    assert naming.per_expert("model.layers.2.block_sparse_moe.experts.5.w2") == ("blk.2.ffn_down_exps.weight", 5)
    qwen = TensorNaming(MODEL_ARCH.QWEN3MOE, 4)
    assert qwen.per_expert("model.layers.3.mlp.experts.7.up_proj") == ("blk.3.ffn_up_exps.weight", 7)
    assert qwen.per_expert("model.layers.3.mlp.gate_proj") is None


def test_fused_names():
    plain = TensorNaming(MODEL_ARCH.QWEN3MOE, 2)
    assert plain.fused_experts_keys("model.layers.1.mlp.experts") == (
        ["blk.1.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight"], "blk.1.ffn_down_exps.weight")
    fused = TensorNaming(MODEL_ARCH.QWEN3MOE, 2, fuse_qkv=True, fuse_gate_up_exps=True)
    assert fused.key("model.layers.0.self_attn.k_proj") == "blk.0.attn_qkv.weight"
    assert fused.fused_experts_keys("model.layers.1.mlp.experts")[0] == ["blk.1.ffn_gate_up_exps.weight"]
    gemma4 = TensorNaming(MODEL_ARCH.GEMMA4, 2)
    assert gemma4.fused_experts_keys("model.layers.0.experts") == (
        ["blk.0.ffn_gate_up_exps.weight"], "blk.0.ffn_down_exps.weight")


def test_fused_qkv_plan_hooks_one_module_per_key():
    model, _ = build("llama")
    plan = plan_targets(model, TensorNaming.for_config(model.config, fuse_qkv=True))
    qkv = [t for t in plan.dense if t.key == "blk.0.attn_qkv.weight"]
    assert [t.module_name.rsplit(".", 1)[1] for t in qkv] == ["q_proj", "k_proj", "v_proj"]
    assert [t.hooked for t in qkv] == [True, False, False]


def test_class_level_dict_does_not_leak_between_archs():
    before = dict(gguf.TensorNameMap.block_mappings_cfg)
    build_name_map(MODEL_ARCH.GEMMA4, 2)  # gemma4 has arch-specific overrides
    build_name_map(MODEL_ARCH.LLAMA, 2)
    assert gguf.TensorNameMap.block_mappings_cfg == before


def test_unmapped_block_linear_is_an_error_naming_the_module():
    import torch

    model, _ = build("llama")
    model.model.layers[1].mlp.extra_proj = torch.nn.Linear(8, 8)
    naming = TensorNaming.for_config(model.config)
    with pytest.raises(NamingError, match=r"model\.layers\.1\.mlp\.extra_proj.*--skip-unmapped"):
        plan_targets(model, naming)
    plan = plan_targets(model, naming, skip_unmapped=True)
    assert plan.skipped == ["model.layers.1.mlp.extra_proj"]


def test_process_output_collects_the_head_or_the_tied_embedding_like_b11434():
    model, _ = build("llama")  # llama ties embeddings by default? make sure of both cases
    naming = TensorNaming.for_config(model.config)
    tied = model.lm_head.weight is model.get_input_embeddings().weight
    keys = plan_targets(model, naming, process_output=True).shapes()
    assert ("output.weight" in keys) == (not tied) and ("token_embd.weight" in keys) == tied
    assert not {"output.weight", "token_embd.weight"} & set(plan_targets(model, naming).shapes())
    gemma, _ = build("gemma3")  # tied: the head's matmul is token_embd.weight, ne0 = hidden size
    keys = plan_targets(gemma, TensorNaming.for_config(gemma.config), process_output=True).shapes()
    assert "output.weight" not in keys and keys["token_embd.weight"] == (1, gemma.config.hidden_size)


def test_entry_lengths_checked_against_target_gguf(tmp_path):
    import numpy as np

    path = tmp_path / "target.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((8, 16), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate_exps.weight", np.zeros((4, 8, 16), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    check_entry_lengths({"blk.0.attn_q.weight": 16, "blk.0.ffn_gate_exps.weight": 64}, path)
    with pytest.raises(NamingError, match="blk.0.attn_q.weight: entry holds 8 values.*16"):
        check_entry_lengths({"blk.0.attn_q.weight": 8}, path)
    with pytest.raises(NamingError, match="blk.1.attn_q.weight.*no tensor"):
        check_entry_lengths({"blk.1.attn_q.weight": 16}, path)
