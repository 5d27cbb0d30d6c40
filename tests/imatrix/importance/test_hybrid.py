"""Hybrid importance: the raw sidecar round trip and the α mix against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFReader, Keys

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry, ImatrixFileError, read_imatrix, write_gguf
from imatrix.importance.hybrid import RAW_TYPE, mix, read_raw, write_raw

DENSE = "blk.0.ffn_down.weight"
MOE = "blk.0.ffn_gate_exps.weight"


def raw_fixture():
    rng = np.random.default_rng(11)
    weight = rng.standard_normal((6, 10)).astype(np.float32)  # (out, in): HF layout, columns = inputs
    x = rng.standard_normal((200, 10)).astype(np.float32) * np.linspace(0.1, 3, 10, dtype=np.float32)
    dense = ImatrixEntry((x.astype(np.float64) ** 2).sum(axis=0), [200], x.astype(np.float64).sum(axis=0))
    experts = rng.standard_normal((3, 5, 4)).astype(np.float32)
    moe_sums = np.stack([(rng.standard_normal((n, 4)) ** 2).sum(axis=0) for n in (40, 0, 90)])
    moe = ImatrixEntry(moe_sums, [40, 0, 90])
    imatrix = Imatrix({DENSE: dense, MOE: moe}, ["cal.txt"], 3, 64)
    energy = {DENSE: (weight.astype(np.float64) ** 2).sum(axis=0), MOE: (experts.astype(np.float64) ** 2).sum(axis=1)}
    return imatrix, energy


def test_raw_sidecar_round_trip(tmp_path):
    imatrix, energy = raw_fixture()
    write_raw(imatrix, energy, tmp_path / "raw.gguf")
    reader = GGUFReader(tmp_path / "raw.gguf")
    assert reader.fields[Keys.General.TYPE].contents() == RAW_TYPE
    assert f"{MOE}.col_energy" in {tensor.name for tensor in reader.tensors}
    back, back_energy = read_raw(tmp_path / "raw.gguf")
    for name, entry in imatrix.entries.items():
        np.testing.assert_array_equal(back.entries[name].sums, entry.sums)
        np.testing.assert_array_equal(back.entries[name].counts, entry.counts)
        np.testing.assert_array_equal(back_energy[name], np.asarray(energy[name], np.float32).reshape(entry.sums.shape))
    # the activation sums travel with it (the MoE entry has none: it stays without)
    np.testing.assert_array_equal(back.entries[DENSE].activation_sums, imatrix.entries[DENSE].activation_sums)
    assert back.entries[MOE].activation_sums is None
    # the sidecar's sums/counts are the plain imatrix, readable as such
    assert set(read_imatrix(tmp_path / "raw.gguf").entries) == {DENSE, MOE}
    # mixing rescales Σx² only; Σx stays the measured one
    mixed = mix(back, back_energy, 0.5)
    np.testing.assert_array_equal(mixed.entries[DENSE].activation_sums, imatrix.entries[DENSE].activation_sums)


def test_alpha_zero_keeps_plain_ratios_per_expert():
    imatrix, energy = raw_fixture()
    mixed = mix(imatrix, energy, 0.0)
    for name, entry in imatrix.entries.items():
        plain, got = entry.means().astype(np.float64), mixed.entries[name].means().astype(np.float64)
        for row, count in enumerate(entry.counts):
            if count == 0:
                np.testing.assert_array_equal(got[row], 1.0)  # quantize's rule for unrouted experts
                continue
            np.testing.assert_allclose(got[row], plain[row] / plain[row].mean(), rtol=1e-6)
            assert got[row].mean() == pytest.approx(1.0, rel=1e-6)
        np.testing.assert_array_equal(mixed.entries[name].counts, entry.counts)


def test_alpha_one_is_weight_energy_times_activation_energy_normalised():
    imatrix, energy = raw_fixture()
    mixed = mix(imatrix, energy, 1.0)
    for name, entry in imatrix.entries.items():
        sums = entry.sums.astype(np.float64)
        counts = entry.counts.astype(np.float64)
        for row, count in enumerate(counts):
            if count == 0:
                assert not mixed.entries[name].sums[row].any()
                continue
            hybrid = np.asarray(energy[name], np.float32).reshape(sums.shape)[row] * (sums[row] / count)
            np.testing.assert_allclose(mixed.entries[name].means()[row], hybrid / hybrid.mean(), rtol=1e-6)


def test_alpha_half_and_per_tensor_alphas():
    imatrix, energy = raw_fixture()
    zero, one = mix(imatrix, energy, 0.0), mix(imatrix, energy, 1.0)
    half = mix(imatrix, energy, {DENSE: 0.5, MOE: 0.25})
    expected_dense = 0.5 * zero.entries[DENSE].means() + 0.5 * one.entries[DENSE].means()
    np.testing.assert_allclose(half.entries[DENSE].means(), expected_dense, rtol=1e-5)
    expected_moe = 0.75 * zero.entries[MOE].means()[0] + 0.25 * one.entries[MOE].means()[0]
    np.testing.assert_allclose(half.entries[MOE].means()[0], expected_moe, rtol=1e-5)


def test_mixed_file_is_a_normal_imatrix(tmp_path):
    imatrix, energy = raw_fixture()
    write_gguf(mix(imatrix, energy, 0.5), tmp_path / "mixed.gguf")
    assert GGUFReader(tmp_path / "mixed.gguf").fields[Keys.General.TYPE].contents() == "imatrix"


def test_bad_inputs_name_the_tensor_or_file(tmp_path):
    imatrix, energy = raw_fixture()
    with pytest.raises(ValueError, match=f"no column energy for tensor {MOE}"):
        mix(imatrix, {DENSE: energy[DENSE]}, 0.5)
    with pytest.raises(ValueError, match=f"column energy of {DENSE} has 3 values, its imatrix entry 10"):
        mix(imatrix, {**energy, DENSE: np.ones(3)}, 0.5)
    with pytest.raises(ValueError, match="outside"):
        mix(imatrix, energy, 1.5)
    write_gguf(imatrix, tmp_path / "plain.gguf")
    with pytest.raises(ImatrixFileError, match="plain.gguf: general.type is 'imatrix'"):
        read_raw(tmp_path / "plain.gguf")
