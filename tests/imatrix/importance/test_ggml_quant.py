"""The ctypes binding to llama.cpp's quantizer: type parsing, argument checks, and bit-identity with llama-quantize."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from imatrix.importance.ggml_quant import GgmlLibraryMissing, GgmlQuantizer, block_size, quant_type


def test_quant_type_accepts_names_and_ids_and_names_the_bad_one():
    assert quant_type("iq2_xs") is GGMLQuantizationType.IQ2_XS
    assert quant_type(int(GGMLQuantizationType.Q4_K)) is GGMLQuantizationType.Q4_K
    assert block_size(GGMLQuantizationType.IQ4_NL) == 32 and block_size(GGMLQuantizationType.IQ2_XS) == 256
    with pytest.raises(ValueError, match="Q4_K_XL"):
        quant_type("Q4_K_XL")


def test_missing_library_is_a_clear_error(tmp_path):
    with pytest.raises(GgmlLibraryMissing, match="libggml-base"):
        GgmlQuantizer.load(tmp_path / "libggml-base.so")


@pytest.fixture(scope="module")
def quantizer() -> GgmlQuantizer:
    from tests.real_components import require_ggml_library

    return require_ggml_library()


def _weighted_relative_error(weights, dequantized, importance):
    return float(((weights - dequantized) ** 2 @ importance).sum() / ((weights**2) @ importance).sum())


@pytest.mark.slow
@pytest.mark.llamacpp
def test_roundtrip_error_falls_with_bits_and_follows_the_importance(quantizer):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((32, 512)).astype(np.float32)
    importance = np.where(rng.random(512) < 0.25, 100.0, 1.0).astype(np.float32)  # a random quarter matters 100x
    errors = [_weighted_relative_error(weights, quantizer.roundtrip(t, weights, importance), importance)
              for t in ("IQ2_XS", "IQ3_XXS", "Q4_K", "Q8_0")]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3
    flat = quantizer.roundtrip("IQ3_XXS", weights, np.ones(512, np.float32))
    assert _weighted_relative_error(weights, flat, importance) > errors[1]  # the vector changes what is kept
    # 3-D (expert) weights take one importance row per expert, like llama-quantize's imatrix + expert * n_per_row
    experts = np.stack([weights, -weights])
    both = quantizer.quantize("Q4_K", experts, np.stack([importance, np.ones(512, np.float32)]))
    assert np.array_equal(both[0], quantizer.quantize("Q4_K", weights, importance))
    assert not np.array_equal(both[1], quantizer.quantize("Q4_K", -weights, importance))


@pytest.mark.slow
@pytest.mark.llamacpp
def test_bad_arguments_raise_instead_of_aborting_the_process(quantizer):
    weights = np.zeros((4, 640), np.float32)
    with pytest.raises(ValueError, match="divisible by 256"):
        quantizer.quantize("IQ2_XS", weights, np.ones(640, np.float32))
    with pytest.raises(ValueError, match="without an importance vector"):
        quantizer.quantize("IQ2_XS", np.zeros((4, 256), np.float32))
    with pytest.raises(ValueError, match="2 rows"):
        quantizer.quantize("Q4_K", np.zeros((4, 256), np.float32), np.ones((2, 256), np.float32))
    assert quantizer.row_size(GGMLQuantizationType.IQ2_XS, 256) == 74
    assert quantizer.requires_imatrix(GGMLQuantizationType.IQ2_XS)
    assert not quantizer.requires_imatrix(GGMLQuantizationType.Q4_K)


@pytest.mark.slow
@pytest.mark.llamacpp
def test_binding_writes_the_bytes_llama_quantize_wrote(quantizer, tmp_path_factory):
    """Same float weights (the Q4_K_M model dequantized, which is what llama-quantize requantizes), same importance
    (sum/count of llama-imatrix's own file) → the same bytes as llama-quantize's IQ2_XS output, for every final type
    of that quant: IQ2_XS, Q2_K (first ffn_down), IQ4_NL and Q5_0 (640-column fallbacks)."""
    from imatrix.files.imatrix_file import read_imatrix
    from tests.imatrix.llamacpp_artifacts import session_artifacts

    artifacts = session_artifacts(tmp_path_factory)
    theirs = artifacts.theirs_imatrix()
    quantized = {t.name: t for t in GGUFReader(artifacts.quant("theirs", theirs)).tensors}
    source = {t.name: t for t in GGUFReader(artifacts.model).tensors}
    imatrix = read_imatrix(theirs)
    checked = {}
    for name in ("blk.3.ffn_down.weight", "blk.0.ffn_down.weight", "blk.5.attn_q.weight",
                 "blk.9.attn_output.weight", "blk.4.attn_v.weight"):
        final_type = quantized[name].tensor_type
        weights = dequantize(source[name].data, source[name].tensor_type)
        ours = quantizer.quantize(final_type, weights, imatrix.entries[name].means())
        assert np.array_equal(ours, quantized[name].data), name
        assert np.array_equal(dequantize(ours, final_type), dequantize(quantized[name].data, final_type))
        checked[name] = final_type.name
    assert set(checked.values()) == {"IQ2_XS", "Q2_K", "IQ4_NL", "Q5_0"}, checked
