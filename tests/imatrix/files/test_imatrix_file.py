"""GGUF and legacy .dat imatrix files: structure byte by byte, round trips, and errors that name the file (merging:
test_merge.py)."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, Keys
from hypothesis import given, settings
from hypothesis import strategies as st

from imatrix.files import legacy_dat
from imatrix.files.imatrix_file import (
    Imatrix,
    ImatrixEntry,
    ImatrixFileError,
    read_imatrix,
    write_dat,
    write_gguf,
)
from tests.imatrix.files.imatrix_samples import (
    DENSE,
    MOE,
    activations_sums,
    llama_imatrix_merge,
    small_imatrix,
)
from tests.real_components import require_llamacpp_tools, require_model


def gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def pad(data: bytes, alignment: int = 32) -> bytes:
    return data + b"\0" * (-len(data) % alignment)


def test_gguf_bytes_equal_hand_built_b11434_layout(tmp_path):
    sums = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    in_sum = np.array([-1.0, 0.5, 2.0, -4.0], np.float32)
    imatrix = Imatrix({DENSE: ImatrixEntry(sums, np.array([16.0]), in_sum)}, ["a.txt"], 1, 16)
    write_gguf(imatrix, tmp_path / "x.gguf")
    stats = np.array(GGUFReader(tmp_path / "x.gguf").get_tensor(3).data, np.float32)

    schema = ["sum_sq", "mean", "elements", "std_deviation", "skewness", "kurtosis", "gain", "h_norm", "l2_dist",
              "cossim", "pearson", "covariance"]
    kv = gguf_string("general.type") + struct.pack("<I", 8) + gguf_string("imatrix")
    kv += gguf_string("imatrix.datasets") + struct.pack("<IIQ", 9, 8, 1) + gguf_string("a.txt")
    kv += gguf_string("imatrix.chunk_count") + struct.pack("<II", 4, 1)
    kv += gguf_string("imatrix.chunk_size") + struct.pack("<II", 4, 16)
    kv += gguf_string("imatrix.stats_schema") + struct.pack("<IIQ", 9, 8, 12) + b"".join(map(gguf_string, schema))
    infos = gguf_string(DENSE + ".in_sum2") + struct.pack("<IQIQ", 1, 4, 0, 0)
    infos += gguf_string(DENSE + ".counts") + struct.pack("<IQIQ", 1, 1, 0, 32)
    infos += gguf_string(DENSE + ".in_sum") + struct.pack("<IQIQ", 1, 4, 0, 64)
    infos += gguf_string(DENSE + ".stats") + struct.pack("<IQIQ", 1, 12, 0, 96)
    header = b"GGUF" + struct.pack("<IQQ", 3, 4, 5) + kv + infos
    expected = pad(header) + pad(sums.tobytes()) + pad(np.float32(16).tobytes()) + pad(in_sum.tobytes())
    expected += pad(stats.tobytes())
    assert (tmp_path / "x.gguf").read_bytes() == expected
    # the 12 statistics, independently: over E[x] = in_sum/16 (mean, σ, skew, kurtosis), E[x²] = sums/16 (Σ, H)
    mean_x, energy = in_sum.astype(np.float64) / 16, sums.astype(np.float64) / 16
    p = energy / energy.sum()
    z = (mean_x - mean_x.mean()) / mean_x.std()
    direct = [energy.sum(), mean_x.mean(), 4, mean_x.std(), (z**3).mean(), (z**4).mean() - 3, np.nan,
              100 * -(p * np.log2(p)).sum() / 2, np.nan, np.nan, np.nan, np.nan]
    np.testing.assert_allclose(stats, direct, rtol=1e-6)


def test_gguf_structure_seen_by_gguf_reader(tmp_path):
    imatrix = small_imatrix()
    write_gguf(imatrix, tmp_path / "x.gguf")
    reader = GGUFReader(tmp_path / "x.gguf")
    keys = [key for key in reader.fields if not key.startswith("GGUF.")]
    assert keys == [Keys.General.TYPE, Keys.IMatrix.DATASETS, Keys.IMatrix.CHUNK_COUNT, Keys.IMatrix.CHUNK_SIZE,
                    "imatrix.stats_schema"]
    assert Keys.General.ARCHITECTURE not in reader.fields
    assert reader.fields[Keys.IMatrix.CHUNK_COUNT].types == [GGUFValueType.UINT32]
    assert reader.fields[Keys.IMatrix.CHUNK_SIZE].types == [GGUFValueType.UINT32]
    assert reader.fields[Keys.IMatrix.DATASETS].contents() == ["calib.txt"]
    names = [tensor.name for tensor in reader.tensors]
    assert names == [f"{DENSE}.in_sum2", f"{DENSE}.counts", f"{DENSE}.stats", f"{MOE}.in_sum2", f"{MOE}.counts",
                     f"{MOE}.stats"]
    shapes = {tensor.name: list(tensor.shape) for tensor in reader.tensors}
    assert shapes == {f"{DENSE}.in_sum2": [8], f"{DENSE}.counts": [1], f"{MOE}.in_sum2": [4, 3], f"{MOE}.counts": [1, 3],
                      f"{DENSE}.stats": [12], f"{MOE}.stats": [12]}
    by_name = {tensor.name: np.array(tensor.data) for tensor in reader.tensors}
    np.testing.assert_array_equal(by_name[f"{MOE}.in_sum2"], imatrix.entries[MOE].sums)
    np.testing.assert_array_equal(by_name[f"{MOE}.counts"].ravel(), [300, 0, 700])


def test_nextn_layer_count_is_written_before_the_schema_and_read_back(tmp_path):
    imatrix = small_imatrix()
    imatrix.n_layer_nextn = 1
    write_gguf(imatrix, tmp_path / "x.gguf")
    reader = GGUFReader(tmp_path / "x.gguf")
    keys = [key for key in reader.fields if not key.startswith("GGUF.")]
    assert keys[-2:] == ["imatrix.n_layer_nextn", "imatrix.stats_schema"]
    assert reader.fields["imatrix.n_layer_nextn"].types == [GGUFValueType.UINT32]
    assert read_imatrix(tmp_path / "x.gguf").n_layer_nextn == 1


def test_gguf_round_trip_through_our_reader(tmp_path):
    imatrix = small_imatrix()
    write_gguf(imatrix, tmp_path / "x.gguf")
    back = read_imatrix(tmp_path / "x.gguf")
    assert (back.datasets, back.chunk_count, back.chunk_size) == (["calib.txt"], 2, 512)
    for name, entry in imatrix.entries.items():
        np.testing.assert_array_equal(back.entries[name].sums, entry.sums)
        np.testing.assert_array_equal(back.entries[name].counts, entry.counts)
    write_gguf(back, tmp_path / "y.gguf")
    assert (tmp_path / "x.gguf").read_bytes() == (tmp_path / "y.gguf").read_bytes()


def test_single_count_for_several_slices_becomes_one_row():
    entry = ImatrixEntry(np.arange(6, dtype=np.float32).reshape(3, 2), [2])  # e.g. DeepSeek attn_k_b via MUL_MAT
    assert entry.sums.shape == (1, 6)
    with pytest.raises(ValueError, match="do not match"):
        ImatrixEntry(np.ones((3, 2)), [1, 2])


def test_means_match_llama_quantize_rule():
    entry = ImatrixEntry(np.array([[2.0, 4.0], [5.0, 5.0]], np.float32), np.array([4.0, 0.0]))
    np.testing.assert_array_equal(entry.means(), [[0.5, 1.0], [1.0, 1.0]])


def test_dat_bytes_equal_hand_built_legacy_layout(tmp_path):
    imatrix = small_imatrix()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_dat(imatrix, tmp_path / "x.dat")
    assert any("partial data (66.67%" in str(w.message) for w in caught)
    dense, moe = imatrix.entries[DENSE], imatrix.entries[MOE]
    expected = struct.pack("<i", 2)
    # ncall = ceil(max count / 512): 1024 → 2 for the dense entry, 700 → 2 for the MoE entry
    dense_values = (dense.sums / np.float32(1024)) * np.float32(2)
    expected += struct.pack("<i", len(DENSE)) + DENSE.encode() + struct.pack("<ii", 2, 8) + dense_values.tobytes()
    moe_values = np.stack([moe.sums[0] / np.float32(300), np.ones(4, np.float32), moe.sums[2] / np.float32(700)])
    moe_values = (moe_values * np.float32(2)).astype(np.float32)
    expected += struct.pack("<i", len(MOE)) + MOE.encode() + struct.pack("<ii", 2, 12) + moe_values.tobytes()
    expected += struct.pack("<ii", 2, len("calib.txt")) + b"calib.txt"
    assert (tmp_path / "x.dat").read_bytes() == expected


def test_dat_skips_entries_without_data_but_gguf_keeps_them(tmp_path):
    imatrix = small_imatrix()
    imatrix.entries["blk.2.ffn_up_exps.weight"] = ImatrixEntry(np.zeros((2, 4)), np.zeros(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_dat(imatrix, tmp_path / "x.dat")
    messages = [str(w.message) for w in caught]
    assert any("blk.2.ffn_up_exps.weight has no data" in m for m in messages)
    assert any(f"{MOE} has partial data" in m for m in messages)
    assert set(read_imatrix(tmp_path / "x.dat").entries) == {DENSE, MOE}
    write_gguf(imatrix, tmp_path / "x.gguf")
    assert "blk.2.ffn_up_exps.weight" in read_imatrix(tmp_path / "x.gguf").entries


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.text(st.sampled_from(list("abcxyz019._-#ÄéΣ")), min_size=1, max_size=30),
        st.tuples(st.integers(0, 2**31 - 1), st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=9)),
        min_size=1, max_size=5,
    ),
    st.integers(-(2**31), 2**31 - 1),
    st.text(max_size=20),
)
def test_legacy_encode_decode_round_trip(entries, last_chunk, dataset):
    items = [legacy_dat.LegacyEntry(name, ncall, np.array(values, np.float32)) for name, (ncall, values) in entries.items()]
    decoded = legacy_dat.decode(legacy_dat.encode(items, last_chunk, dataset))
    assert [e.name for e in decoded.entries] == sorted(entries, key=lambda name: name.encode())
    for entry in decoded.entries:
        ncall, values = entries[entry.name]
        assert entry.ncall == ncall
        np.testing.assert_array_equal(entry.values, np.array(values, np.float32))
    assert (decoded.last_chunk, decoded.dataset) == (last_chunk, dataset)


def test_gguf_to_dat_to_gguf_preserves_per_column_means(tmp_path):
    imatrix = small_imatrix()
    imatrix.entries[MOE].counts[1] = 50  # every expert has data, so the legacy file loses nothing but the counts
    imatrix.entries[MOE].sums[1] = activations_sums(np.random.default_rng(3), 50, 4)
    write_gguf(imatrix, tmp_path / "a.gguf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_dat(read_imatrix(tmp_path / "a.gguf"), tmp_path / "a.dat")
    legacy = read_imatrix(tmp_path / "a.dat", chunk_size=128)
    assert legacy.source_format == "dat" and legacy.datasets == ["calib.txt"]
    np.testing.assert_array_equal(legacy.entries[DENSE].counts, [2 * 128])  # ncall · chunk size
    for name, entry in imatrix.entries.items():
        np.testing.assert_allclose(legacy.entries[name].means().ravel(), entry.means().ravel(), rtol=1e-6)
    write_gguf(legacy, tmp_path / "b.gguf")
    again = read_imatrix(tmp_path / "b.gguf")
    for name, entry in imatrix.entries.items():
        np.testing.assert_allclose(again.entries[name].means().ravel(), entry.means().ravel(), rtol=1e-6)


def test_legacy_zero_count_expert_reads_back_as_one(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dat(small_imatrix(), tmp_path / "x.dat")
    entry = read_imatrix(tmp_path / "x.dat").entries[MOE]
    np.testing.assert_allclose(entry.means().reshape(3, 4)[1], np.ones(4), rtol=1e-6)


def write_custom_gguf(path, tensors: dict[str, np.ndarray], *, counters_type=GGUFValueType.UINT32, general="imatrix"):
    writer = GGUFWriter(path, arch="")
    writer.add_type(general)
    writer.add_array(Keys.IMatrix.DATASETS, ["d"])
    writer.add_key_value(Keys.IMatrix.CHUNK_COUNT, 1, counters_type)
    writer.add_key_value(Keys.IMatrix.CHUNK_SIZE, 16, counters_type)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize(
    ("tensors", "counters_type", "message"),
    [
        ({f"{DENSE}.in_sum2": np.ones(4, np.float32)}, GGUFValueType.UINT32, "mismatched sums and counts"),
        ({f"{DENSE}.counts": np.ones(1, np.float32)}, GGUFValueType.UINT32, "mismatched sums and counts"),
        (
            {f"{DENSE}.in_sum2": np.ones(4, np.float16), f"{DENSE}.counts": np.ones(1, np.float32)},
            GGUFValueType.UINT32,
            "F16; llama.cpp reads only F32",
        ),
        (
            {f"{DENSE}.in_sum2": np.ones(5, np.float32), f"{DENSE}.counts": np.ones(2, np.float32)},
            GGUFValueType.UINT32,
            "5 sums for 2 counts",
        ),
        (
            {f"{DENSE}.in_sum2": np.full(4, np.nan, np.float32), f"{DENSE}.counts": np.ones(1, np.float32)},
            GGUFValueType.UINT32,
            "4 non-finite values",
        ),
        (
            {f"{DENSE}.in_sum2": np.ones(4, np.float32), f"{DENSE}.counts": np.ones(1, np.float32)},
            GGUFValueType.INT32,
            "imatrix.chunk_count is INT32",
        ),
        ({"token_embd.weight": np.ones((4, 4), np.float32)}, GGUFValueType.UINT32, "without imatrix entries"),
    ],
)
def test_bad_gguf_files_name_the_file_and_the_problem(tmp_path, tensors, counters_type, message):
    path = tmp_path / "bad.gguf"
    write_custom_gguf(path, tensors, counters_type=counters_type)
    with pytest.raises(ImatrixFileError, match=message) as caught:
        read_imatrix(path)
    assert str(path) in str(caught.value)


def test_truncated_and_foreign_files(tmp_path):
    write_gguf(small_imatrix(), tmp_path / "x.gguf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dat(small_imatrix(), tmp_path / "x.dat")
    cases = {
        "cut.gguf": ((tmp_path / "x.gguf").read_bytes()[:200], "damaged or truncated GGUF"),
        "cut.dat": ((tmp_path / "x.dat").read_bytes()[:60], "truncated at byte"),
        "notes.txt": (b"hello, this is not an imatrix at all\n" * 3, "neither a GGUF imatrix"),
        "empty.dat": (b"", "truncated at byte 0"),
        "zero.dat": (struct.pack("<i", 0), "at least one entry"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImatrixFileError, match=message) as caught:
            read_imatrix(tmp_path / name)
        assert name in str(caught.value)
    with pytest.raises(ImatrixFileError, match="cannot read"):
        read_imatrix(tmp_path / "missing.gguf")


def test_writers_refuse_what_llama_cpp_cannot_read(tmp_path):
    imatrix = small_imatrix()
    imatrix.datasets = []
    with pytest.raises(ImatrixFileError, match="no dataset name"):
        write_gguf(imatrix, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temporary left behind


def test_gguf_tensor_types_are_f32(tmp_path):
    write_gguf(small_imatrix(), tmp_path / "x.gguf")
    assert {t.tensor_type for t in GGUFReader(tmp_path / "x.gguf").tensors} == {GGMLQuantizationType.F32}


@pytest.mark.llamacpp
def test_llama_imatrix_reads_our_files_and_rewrites_the_same_data(tmp_path):
    require_llamacpp_tools(("llama-imatrix",))
    imatrix = small_imatrix()
    write_gguf(imatrix, tmp_path / "ours.gguf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dat(imatrix, tmp_path / "ours.dat")

    # Its legacy writer, fed our GGUF with the same chunk size (512 = its default -c), gives our .dat byte for byte.
    llama_imatrix_merge([tmp_path / "ours.gguf"], tmp_path / "theirs.dat", "--output-format", "dat")
    assert (tmp_path / "theirs.dat").read_bytes() == (tmp_path / "ours.dat").read_bytes()

    # Its GGUF writer, given our file, writes our file again byte for byte: same KV, tensors, `.stats` (here from
    # E[x²], the legacy statistics, with an MoE expert that saw no tokens) and chunk count.
    llama_imatrix_merge([tmp_path / "ours.gguf"], tmp_path / "theirs.gguf")
    assert (tmp_path / "theirs.gguf").read_bytes() == (tmp_path / "ours.gguf").read_bytes()
    # ... and with activation sums: `.in_sum` after the counts and `.stats` over E[x]
    with_sums = small_imatrix(with_activations=True)
    write_gguf(with_sums, tmp_path / "ours-in-sum.gguf")
    llama_imatrix_merge([tmp_path / "ours-in-sum.gguf"], tmp_path / "theirs-in-sum.gguf")
    assert (tmp_path / "theirs-in-sum.gguf").read_bytes() == (tmp_path / "ours-in-sum.gguf").read_bytes()


@pytest.mark.slow
@pytest.mark.llamacpp
def test_real_llama_imatrix_file_reads_and_converts_like_llama(tmp_path):
    """On Gemma 3 270M: we read llama-imatrix's own GGUF, and our .dat of it equals llama-imatrix's .dat byte for byte."""
    from pathlib import Path

    from imatrix.llamacpp import tools as llamacpp

    require_llamacpp_tools(("llama-imatrix",))
    model = require_model()
    text = Path(__file__).resolve().parents[3] / "examples" / "text" / "mixed_prose_code.txt"
    llamacpp.imatrix(model, text, tmp_path / "theirs.gguf", ctx_size=64, chunks=4, threads=2,
                     extra_args=["--no-ppl", "--process-output"])
    theirs = read_imatrix(tmp_path / "theirs.gguf")
    # b11434's file re-written by our writer from the values we read: the same bytes (KV, order, in_sum, stats)
    write_gguf(theirs, tmp_path / "rewritten.gguf")
    assert (tmp_path / "rewritten.gguf").read_bytes() == (tmp_path / "theirs.gguf").read_bytes()
    assert theirs.without_activations() == []
    # b11434's --process-output on a tied-embedding model: the head's matmul is token_embd.weight (640 columns)
    assert set(theirs.entries) - {n for n in theirs.entries if n.startswith("blk.")} == {"token_embd.weight"}
    assert len(theirs.entries) == 127 and theirs.entries["token_embd.weight"].sums.shape == (1, 640)
    assert (theirs.chunk_count, theirs.chunk_size) == (4, 64)
    for entry in theirs.entries.values():
        assert entry.counts.shape == (1,) and 0 < entry.counts[0] <= 4 * 64
        assert np.isfinite(entry.sums).all()
    llama_imatrix_merge([tmp_path / "theirs.gguf"], tmp_path / "theirs.dat", "-c", "64", "--output-format", "dat")
    with pytest.warns(UserWarning, match="no activation sums; the in_sum of 127 entries is not written"):
        write_dat(theirs, tmp_path / "ours.dat")
    assert (tmp_path / "ours.dat").read_bytes() == (tmp_path / "theirs.dat").read_bytes()


def test_files_without_in_sum_read_and_wrong_in_sum_is_refused(tmp_path):
    imatrix = small_imatrix(with_activations=True)
    write_gguf(imatrix, tmp_path / "x.gguf")
    back = read_imatrix(tmp_path / "x.gguf")
    np.testing.assert_array_equal(back.entries[MOE].activation_sums, imatrix.entries[MOE].activation_sums)
    # an older file: only in_sum2/counts (as llama.cpp before b11434 and calibkit before this wrote them)
    writer = GGUFWriter(tmp_path / "old.gguf", arch="")
    writer.add_type("imatrix")
    writer.add_array(Keys.IMatrix.DATASETS, ["d"])
    writer.add_uint32(Keys.IMatrix.CHUNK_COUNT, 1)
    writer.add_uint32(Keys.IMatrix.CHUNK_SIZE, 8)
    writer.add_tensor(DENSE + ".in_sum2", np.ones(4, np.float32))
    writer.add_tensor(DENSE + ".counts", np.array([8], np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    old = read_imatrix(tmp_path / "old.gguf")
    assert old.without_activations() == [DENSE] and any("no activation sums" in note for note in old.notes)
    writer = GGUFWriter(tmp_path / "bad.gguf", arch="")
    writer.add_tensor(DENSE + ".in_sum2", np.ones(4, np.float32))
    writer.add_tensor(DENSE + ".counts", np.array([8], np.float32))
    writer.add_tensor(DENSE + ".in_sum", np.ones(3, np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    with pytest.raises(ImatrixFileError, match=r"bad\.gguf: mismatched sums and counts: .*in_sum has 3 values"):
        read_imatrix(tmp_path / "bad.gguf")
