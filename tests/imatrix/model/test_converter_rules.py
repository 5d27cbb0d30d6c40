"""The converter's own rules before gguf's name table: multimodal checkpoints collect their language model only,
named as the converter names the text GGUF; converter splits."""

from __future__ import annotations

import torch
from gguf import MODEL_ARCH

from imatrix.collect.accumulators import plan_targets
from imatrix.model.converter_rules import converter_text_name, is_multimodal
from imatrix.model.naming import TensorNaming
from tests.imatrix.tiny_models import HIDDEN, build, expected_entries


def _gemma4_multimodal():
    import transformers as tf

    text_model, _ = build("gemma4")
    vision = tf.Gemma4VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                   num_key_value_heads=2, head_dim=16)
    config = tf.Gemma4Config(text_config=text_model.config.to_dict(), vision_config=vision.to_dict())
    config.architectures = ["Gemma4ForConditionalGeneration"]
    torch.manual_seed(0)
    return tf.Gemma4ForConditionalGeneration(config).eval(), text_model


def test_gemma4_multimodal_collects_the_text_model_under_text_gguf_names():
    model, text_model = _gemma4_multimodal()
    naming = TensorNaming.for_config(model.config)
    assert naming.arch == MODEL_ARCH.GEMMA4
    plan = plan_targets(model, naming)
    got = {key: rows * cols for key, (rows, cols) in plan.shapes().items()}
    assert got == expected_entries(text_model, MODEL_ARCH.GEMMA4)
    assert plan.multimodal and all("vision" in name for name in plan.multimodal)
    assert all(".language_model.layers." in t.module_name for t in plan.dense)


def test_multimodal_rules_follow_the_converter():
    assert converter_text_name("model.language_model.layers.3.mlp.down_proj") == "model.layers.3.mlp.down_proj"
    assert converter_text_name("language_model.model.layers.0.self_attn.q_proj") == "model.layers.0.self_attn.q_proj"
    for name in ("model.vision_tower.encoder.layers.0.self_attn.q_proj.linear", "model.embed_vision.embedding_projection",
                 "model.audio_tower.layers.0.ffn", "model.visual.blocks.0.attn.qkv", "model.multi_modal_projector.linear_1"):
        assert is_multimodal(name) and converter_text_name(name) is None
    assert not is_multimodal("model.layers.0.mlp.gate_proj")


def test_qwen3_next_splits_as_the_converter_does():
    naming = TensorNaming(MODEL_ARCH.QWEN3NEXT, 2)
    assert naming.keys("model.layers.0.linear_attn.in_proj_qkvz") == ["blk.0.attn_qkv.weight", "blk.0.attn_gate.weight"]
    assert naming.fused_experts_keys("model.layers.1.mlp.experts") == (
        ["blk.1.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight"], "blk.1.ffn_down_exps.weight")
    fused = TensorNaming(MODEL_ARCH.QWEN3NEXT, 2, fuse_gate_up_exps=True)
    assert fused.fused_experts_keys("model.layers.1.mlp.experts")[0] == ["blk.1.ffn_gate_up_exps.weight"]
    assert HIDDEN  # the shared tiny dims are importable (keeps this module's builders in step with tiny_models)


def test_row_split_energies_take_each_keys_rows():
    from imatrix.model.converter_rules import ROW_SPLITS

    split = ROW_SPLITS[(MODEL_ARCH.QWEN3NEXT, "linear_attn.in_proj_qkvz")]
    config = dict(linear_key_head_dim=2, linear_value_head_dim=3, linear_num_key_heads=2, linear_num_value_heads=4)
    qkv, z = split.rows(config, 2 * (2 + 2 + 6 + 6))  # per key head: q 2, k 2, v 2×3, z 2×3
    assert qkv.tolist() == list(range(0, 10)) + list(range(16, 26)) and z.tolist() == [*range(10, 16), *range(26, 32)]
