"""Merging imatrices (imatrix.files.merge): sums and counts add up to one collection over all the rows, in_sum kept
only where every input has it, chunk count rounded like llama-imatrix, and llama-imatrix's own merge agrees."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from imatrix.files.imatrix_file import (
    Imatrix,
    ImatrixEntry,
    ImatrixFileError,
    read_imatrix,
    write_dat,
    write_gguf,
)
from imatrix.files.merge import merge
from tests.imatrix.files.imatrix_samples import (
    DENSE,
    MOE,
    llama_imatrix_merge,
    small_imatrix,
)
from tests.real_components import require_llamacpp_tools


def test_merge_of_two_halves_equals_the_whole():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2048, 16)).astype(np.float32)
    squares = x.astype(np.float64) ** 2
    routes = rng.integers(0, 4, size=2048)

    def collected(rows: slice, chunks: int) -> Imatrix:
        dense = ImatrixEntry(squares[rows].sum(axis=0), np.array([squares[rows].shape[0]]))
        part = routes[rows]
        moe_sums = np.stack([squares[rows][part == e].sum(axis=0) for e in range(4)])
        moe = ImatrixEntry(moe_sums, np.bincount(part, minlength=4))
        return Imatrix({DENSE: dense, MOE: moe}, [f"part{chunks}"], chunks, 512)

    first, second = collected(slice(0, 1024), 2), collected(slice(1024, 2048), 2)
    whole = collected(slice(0, 2048), 4)
    merged = merge([first, second])
    assert merged.chunk_count == 4 and merged.chunk_size == 512 and merged.datasets == ["part2", "part2"]
    for name in (DENSE, MOE):
        np.testing.assert_array_equal(merged.entries[name].counts, whole.entries[name].counts)
        np.testing.assert_allclose(merged.entries[name].sums, whole.entries[name].sums, rtol=1e-6)
    assert merged.entries[MOE].counts.sum() == 2048


def test_merge_gguf_with_dat_uses_the_chunk_size_for_the_dat(tmp_path):
    imatrix = small_imatrix()
    del imatrix.entries[MOE]
    write_dat(imatrix, tmp_path / "x.dat")
    legacy = read_imatrix(tmp_path / "x.dat", chunk_size=512)
    merged = merge([imatrix, legacy])
    np.testing.assert_array_equal(merged.entries[DENSE].counts, [1024 + 2 * 512])
    np.testing.assert_allclose(merged.entries[DENSE].means(), imatrix.entries[DENSE].means(), rtol=1e-6)
    assert merged.chunk_count == (1024 + 1024) // 512


def test_merge_broadcasts_a_single_count_to_experts():
    moe = ImatrixEntry(np.ones((2, 3)), np.array([10.0, 20.0]))
    legacy_like = ImatrixEntry(np.ones((1, 6)), np.array([5.0]))
    merged = merge([Imatrix({MOE: legacy_like}, ["a"], 0, 1), Imatrix({MOE: moe}, ["b"], 0, 1)])
    np.testing.assert_array_equal(merged.entries[MOE].counts, [15, 25])
    assert merged.entries[MOE].sums.shape == (2, 3)


def test_merge_length_mismatch_names_tensor_and_lengths():
    a = Imatrix({DENSE: ImatrixEntry(np.ones(8), [4])}, ["a"], 0, 512)
    b = Imatrix({DENSE: ImatrixEntry(np.ones(16), [4])}, ["b"], 0, 512)
    with pytest.raises(ImatrixFileError, match=rf"{DENSE}: input 2 has 16 values .* have 8"):
        merge([a, b])


def test_merge_keeps_in_sum_only_when_every_input_has_it_and_says_which_input_lacks_it(tmp_path):
    a, b = small_imatrix(with_activations=True), small_imatrix(np.random.default_rng(9), with_activations=True)
    merged = merge([a, b])
    for name in a.entries:
        np.testing.assert_array_equal(merged.entries[name].activation_sums,
                                      a.entries[name].activation_sums + b.entries[name].activation_sums)
    legacy = small_imatrix(np.random.default_rng(9))  # e.g. an older llama.cpp's file: no in_sum
    with pytest.warns(UserWarning, match=r"in_sum\) dropped for 2 entries \(first: blk\.0\.attn_q\.weight\): "
                                         r"old\.gguf has none"):
        mixed = merge([a, legacy], labels=["new.gguf", "old.gguf"])
    assert mixed.without_activations() == sorted(a.entries)
    np.testing.assert_array_equal(mixed.entries[DENSE].sums, a.entries[DENSE].sums + legacy.entries[DENSE].sums)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is lost when no input had in_sum: no warning
        assert merge([legacy, small_imatrix()]).without_activations() == sorted(a.entries)
    # a .dat never has in_sum: merging one drops it too, with the same message
    with pytest.warns(UserWarning, match="no activation sums"):
        write_dat(a, tmp_path / "a.dat")
    with pytest.warns(UserWarning, match=r"a\.dat has none"):
        merge([a, read_imatrix(tmp_path / "a.dat")], labels=["a.gguf", "a.dat"])


def test_merge_chunk_count_is_rounded_to_nearest_like_rows_to_chunks():
    odd = small_imatrix()
    odd.entries[DENSE] = ImatrixEntry(odd.entries[DENSE].sums, [1300.0])
    assert merge([odd]).chunk_count == 3  # (1300 + 256) // 512, not 1300 // 512 = 2
    odd.entries[DENSE] = ImatrixEntry(odd.entries[DENSE].sums, [1279.0])
    assert merge([odd]).chunk_count == 2


def test_merge_refuses_nothing_and_mismatched_expert_counts():
    with pytest.raises(ValueError, match="at least one imatrix"):
        merge([])
    three = Imatrix({MOE: ImatrixEntry(np.ones((3, 4)), [1.0, 2.0, 3.0])}, ["a"], 0, 512)
    two = Imatrix({MOE: ImatrixEntry(np.ones((2, 6)), [1.0, 2.0])}, ["b"], 0, 512)
    with pytest.raises(ImatrixFileError, match=rf"{MOE}: b\.gguf has 2 expert counts .* have 3"):
        merge([three, two], labels=["a.gguf", "b.gguf"])
    with pytest.raises(ImatrixFileError, match="chunk size -64 must be positive"):
        merge([three], chunk_size=-64)


def test_merge_keeps_the_first_chunk_size_and_warns_on_a_different_one(tmp_path):
    first, second = small_imatrix(), small_imatrix(np.random.default_rng(1))
    second.chunk_size = 256
    write_gguf(first, tmp_path / "a.gguf")
    write_gguf(second, tmp_path / "b.gguf")
    with pytest.warns(UserWarning, match=r"b\.gguf: chunk size 256 != 512"):
        merged = merge([read_imatrix(tmp_path / "a.gguf"), read_imatrix(tmp_path / "b.gguf")],
                       labels=["a.gguf", "b.gguf"])
    assert merged.chunk_size == 512 and merged.chunk_count == (2 * 1024 + 256) // 512
    # a .dat stores no chunk size (the reader was told one): nothing to disagree with, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dat(second, tmp_path / "b.dat")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert merge([first, read_imatrix(tmp_path / "b.dat", chunk_size=256)]).chunk_size == 512


def test_merge_keeps_the_first_nextn_layer_count():
    a, b, c = small_imatrix(), small_imatrix(), small_imatrix()
    a.n_layer_nextn, c.n_layer_nextn = 1, 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert merge([b, a]).n_layer_nextn == 1 and merge([b, b]).n_layer_nextn == 0
    with pytest.warns(UserWarning, match=r"NextN layer counts differ between the inputs \(\[1, 2\]\); using 1"):
        assert merge([a, b, c]).n_layer_nextn == 1


@pytest.mark.llamacpp
def test_llama_imatrix_merges_like_our_merge(tmp_path):
    require_llamacpp_tools(("llama-imatrix",))
    imatrix = small_imatrix()
    write_gguf(imatrix, tmp_path / "ours.gguf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dat(imatrix, tmp_path / "ours.dat")

    # a rounded chunk count (1300 rows / 512 → 3): llama-imatrix rewrites our merged file byte for byte
    odd = small_imatrix()
    odd.entries[DENSE] = ImatrixEntry(odd.entries[DENSE].sums, [1300.0])
    merged = merge([odd])
    assert merged.chunk_count == 3
    write_gguf(merged, tmp_path / "odd.gguf")
    llama_imatrix_merge([tmp_path / "odd.gguf"], tmp_path / "theirs-odd.gguf")
    assert (tmp_path / "theirs-odd.gguf").read_bytes() == (tmp_path / "odd.gguf").read_bytes()

    # Merging our GGUF with our .dat: llama.cpp and our merge agree on every sum and count.
    llama_imatrix_merge([tmp_path / "ours.gguf", tmp_path / "ours.dat"], tmp_path / "both.gguf")
    both = read_imatrix(tmp_path / "both.gguf")
    ours = merge([read_imatrix(tmp_path / "ours.gguf"), read_imatrix(tmp_path / "ours.dat", chunk_size=512)])
    assert both.chunk_count == ours.chunk_count and both.datasets == ours.datasets
    for name, entry in ours.entries.items():
        np.testing.assert_array_equal(both.entries[name].sums, entry.sums)
        np.testing.assert_array_equal(both.entries[name].counts, entry.counts)
