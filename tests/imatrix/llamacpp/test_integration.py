"""The loop with the real llama.cpp tools: our imatrix files in llama-quantize / llama-imatrix, and our values vs theirs.

Real model: Gemma 3 270M Q4_K_M (PyPI packages). Text: examples/text/mixed_prose_code.txt (5,820 tokens → 45 chunks
of 128). The slow tests share one llama-imatrix run, one `imatrix collect` run and the quants built from them
(tests/imatrix/llamacpp_artifacts.py). The fast tests at the bottom check tool discovery and error messages.
"""

from __future__ import annotations

import os
import stat
import subprocess

import numpy as np
import pytest
from gguf import GGUFReader

from imatrix.files.compare import compare
from imatrix.files.imatrix_file import read_imatrix, write_dat, write_gguf
from imatrix.files.merge import merge
from imatrix.llamacpp import tools as llamacpp
from tests.imatrix.llamacpp_artifacts import CTX, session_artifacts
from tests.real_components import require_llamacpp_tools

ACTIVATION_COSINE, ACTIVATION_L2 = 0.995, 0.012  # E[x]: measured min cosine 0.9971, median relative L2 0.0061


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    return session_artifacts(tmp_path_factory)


@pytest.fixture(scope="session")
def ours(artifacts):
    return artifacts.ours_imatrix()


@pytest.fixture(scope="session")
def theirs(artifacts):
    return artifacts.theirs_imatrix()


def _quant_tensors(path):
    """name → (type, raw bytes) of every tensor of a quantized GGUF."""
    return {t.name: (t.tensor_type.name, bytes(t.data.tobytes())) for t in GGUFReader(str(path)).tensors}


def _kv(path, key):
    field = GGUFReader(str(path)).get_field(key)
    return None if field is None else field.contents()


@pytest.mark.slow
@pytest.mark.llamacpp
def test_llama_quantize_accepts_our_gguf_and_dat_for_iq2_xs(artifacts, ours, tmp_path):
    # IQ2_XS refuses to run without an imatrix (spec §5.3), so a successful run proves the file was used.
    from_gguf = artifacts.quant("ours", ours)
    log = artifacts.quantize_log("ours")
    assert "did not find weights" not in log
    assert _kv(from_gguf, "quantize.imatrix.entries_count") == 126
    assert _kv(from_gguf, "quantize.imatrix.chunks_count") == 45
    types = {kind for kind, _ in _quant_tensors(from_gguf).values()}
    assert "IQ2_XS" in types

    # The same statistics written as a legacy .dat give the same per-column means, hence identical tensor data.
    dat = tmp_path / "ours.dat"
    with pytest.warns(UserWarning, match="the in_sum of 126 entries is not written"):
        write_dat(read_imatrix(ours), dat)
    from_dat = tmp_path / "ours-from-dat.IQ2_XS.gguf"
    llamacpp.quantize(artifacts.model, from_dat, "IQ2_XS", imatrix=dat, threads=2)
    assert _quant_tensors(from_dat) == _quant_tensors(from_gguf)

    # ... and the quant loads and runs in llama-perplexity, a little worse than the Q4_K_M it came from.
    ppl, err, _ = artifacts.perplexity(from_gguf)
    base_ppl, _, _ = artifacts.perplexity(artifacts.model)
    assert np.isfinite(ppl) and err > 0 and ppl > base_ppl


@pytest.mark.slow
@pytest.mark.llamacpp
def test_collect_matches_llama_imatrix(ours, theirs):
    mine, reference = read_imatrix(ours), read_imatrix(theirs)
    report = compare(mine, reference)
    assert report.identical_keys and len(report.tensors) == 126
    assert all(key.startswith("blk.") for key in mine.entries)
    # Counts: we count every row (45 × 128). llama.cpp skips matmuls of < 16 rows; at -c 128 with 16 sequences per
    # 2048-token batch no micro-batch is that small, so its counts are the same. A run whose last batch splits into a
    # tiny micro-batch would lose those rows in llama.cpp only, hence "≤" plus a bound of one skipped micro-batch.
    for comparison in report.tensors:
        assert comparison.count_a == 45 * CTX
        assert comparison.count_a - 16 < comparison.count_b <= comparison.count_a
    assert (mine.chunk_count, mine.chunk_size) == (reference.chunk_count, reference.chunk_size) == (45, CTX)
    worst = min(report.tensors, key=lambda t: t.cosine)
    assert worst.cosine >= 0.9995, worst
    # median over tensors of the per-column median relative error (llama.cpp's CPU kernels quantize activations to
    # Q8 for the dot products, so a torch run cannot match to the last bit; spec §9 measured 0.2–1%).
    assert report.median_relative_error <= 0.006, report.as_dict()["summary"]
    # b11434's activation sums: every entry has them on both sides, and the per-column means E[x] agree
    assert mine.without_activations() == reference.without_activations() == []
    worst = min(report.tensors, key=lambda t: t.activation_cosine)
    assert worst.activation_cosine >= ACTIVATION_COSINE, worst
    assert np.median([t.activation_relative_l2 for t in report.tensors]) <= ACTIVATION_L2, report.as_dict()["summary"]


def _layout(path):
    """KV keys with their types, and tensor names with shapes and types, in file order."""
    reader = GGUFReader(str(path))
    kv = [(name, [t.name for t in field.types]) for name, field in reader.fields.items() if not name.startswith("GGUF.")]
    return kv, [(t.name, [int(n) for n in t.shape], t.tensor_type.name) for t in reader.tensors]


@pytest.mark.slow
@pytest.mark.llamacpp
def test_collect_writes_llama_imatrix_layout(ours, theirs):
    """Same keys, KV order and types, tensor names, order, shapes and types (in_sum2, counts, in_sum, stats)."""
    assert _layout(ours) == _layout(theirs)


@pytest.mark.slow
@pytest.mark.llamacpp
@pytest.mark.parametrize("which", ["ours", "theirs"])
def test_inspect_statistics_equal_llama_imatrix_show_statistics(request, which):
    from imatrix.show_statistics import compute_statistics, format_table

    path = request.getfixturevalue(which)
    run = subprocess.run([str(llamacpp.find_tool("llama-imatrix")), "-m", "unused.gguf", "--in-file", str(path),
                          "--show-statistics"], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert format_table(compute_statistics(read_imatrix(path)), str(path)) == run.stdout


@pytest.mark.slow
@pytest.mark.llamacpp
def test_iq2_xs_made_with_ours_scores_like_theirs(artifacts, ours, theirs):
    ppl_ours, err_ours, _ = artifacts.perplexity(artifacts.quant("ours", ours))
    ppl_theirs, err_theirs, _ = artifacts.perplexity(artifacts.quant("theirs", theirs))
    assert abs(ppl_ours - ppl_theirs) / ppl_theirs <= 0.01, (ppl_ours, ppl_theirs)


@pytest.mark.slow
@pytest.mark.llamacpp
def test_llama_imatrix_merges_ours_with_theirs_and_our_merge_agrees(ours, theirs, tmp_path):
    # llama-cpp-bin 11434 writes more than the spec's 0c1e57098 did: per entry also `.in_sum` and `.stats` tensors plus
    # an `imatrix.stats_schema` key; so do we. llama-imatrix merges the two files like our merge does.
    assert any(t.name.endswith(".in_sum") for t in GGUFReader(str(theirs)).tensors)
    merged = tmp_path / "merged.gguf"
    # combine-only mode: no -f, so the model named by -m is never loaded
    run = llamacpp.run_tool("llama-imatrix", ["-m", tmp_path / "unused.gguf", "--in-file", ours, "--in-file", theirs,
                                              "-o", merged], timeout=120)
    complaints = [line for line in run.output.splitlines()
                  if any(word in line.lower() for word in ("error", "failed", "mismatch", "invalid"))]
    assert complaints == [], complaints
    theirs_merged = read_imatrix(merged)
    ours_merged = merge([read_imatrix(ours), read_imatrix(theirs)])
    assert theirs_merged.entries.keys() == ours_merged.entries.keys()
    # both files have in_sum for every entry, so llama-imatrix's merge keeps the activation data, as ours does
    assert theirs_merged.without_activations() == ours_merged.without_activations() == []
    for key, entry in ours_merged.entries.items():
        np.testing.assert_array_equal(entry.counts, theirs_merged.entries[key].counts)
        np.testing.assert_allclose(entry.sums, theirs_merged.entries[key].sums, rtol=1e-6)
        np.testing.assert_allclose(entry.activation_sums, theirs_merged.entries[key].activation_sums, rtol=1e-5,
                                   atol=1e-6 * float(np.abs(entry.activation_sums).max()))
    assert theirs_merged.chunk_count == ours_merged.chunk_count == 90
    assert theirs_merged.datasets == ours_merged.datasets


@pytest.mark.slow
@pytest.mark.llamacpp
def test_wrong_entry_length_is_caught_before_llama_quantize(artifacts, ours, tmp_path):
    from imatrix.model.naming import NamingError, check_entry_lengths

    broken = read_imatrix(ours)
    key = "blk.0.attn_output.weight"  # 1024 input columns; the first imatrix-using tensor after token_embd
    entry = broken.entries[key]
    entry.sums = entry.sums[:, :512].copy()
    entry.activation_sums = entry.activation_sums[:, :512].copy()
    write_gguf(broken, tmp_path / "broken.gguf")
    lengths = {name: e.n_values for name, e in read_imatrix(tmp_path / "broken.gguf").entries.items()}
    with pytest.raises(NamingError, match=r"blk\.0\.attn_output\.weight: entry holds 512 values, .* needs .* = 1024"):
        check_entry_lengths(lengths, artifacts.model)
    # What the check prevents: llama-quantize accepts the file (even with --dry-run) and fails only mid-run, after
    # writing the tensors before it, leaving a half-written output file behind.
    with pytest.raises(llamacpp.LlamaCppFailed, match="llama-quantize failed") as failure:
        llamacpp.quantize(artifacts.model, tmp_path / "never.gguf", "IQ2_XS", imatrix=tmp_path / "broken.gguf",
                          threads=2)
    assert "imatrix size 512 is different from tensor size 1024" in failure.value.output


# ------------------------------------------------------------------------------------------ discovery and errors


def _fake_tool(folder, name, script):
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_llama_cpp_bin_env_wins_over_path(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    _fake_tool(first, "llama-quantize", "exit 0\n")
    _fake_tool(second, "llama-quantize", "exit 0\n")
    monkeypatch.setenv("PATH", str(second))
    monkeypatch.setenv(llamacpp.LLAMA_CPP_BIN_ENV, str(first))
    assert llamacpp.find_tool("llama-quantize") == (first / "llama-quantize").resolve()
    monkeypatch.delenv(llamacpp.LLAMA_CPP_BIN_ENV)
    assert llamacpp.find_tool("llama-quantize") == (second / "llama-quantize").resolve()


def test_missing_tool_names_the_tool_and_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(llamacpp.LLAMA_CPP_BIN_ENV, raising=False)
    monkeypatch.setattr(llamacpp, "package_bin_dir", lambda: None)
    with pytest.raises(llamacpp.LlamaCppNotFound, match=r"llama-quantize not found.*pip install 'calibkit\[llamacpp\]'"):
        llamacpp.find_tool("llama-quantize")
    assert llamacpp.tools_available(["llama-quantize"]) is False
    with pytest.raises(llamacpp.LlamaCppNotFound, match="libggml-base"):
        llamacpp.ggml_library_path()


def test_failing_tool_reports_status_command_and_output_tail(tmp_path, monkeypatch):
    lines = "".join(f"echo line {i}\n" for i in range(40))
    _fake_tool(tmp_path, "llama-imatrix", lines + "echo 'boom: bad tensor' >&2\nexit 3\n")
    monkeypatch.setenv(llamacpp.LLAMA_CPP_BIN_ENV, str(tmp_path))
    with pytest.raises(llamacpp.LlamaCppFailed) as failure:
        llamacpp.run_tool("llama-imatrix", ["-m", "x.gguf"])
    message = str(failure.value)
    assert "llama-imatrix failed with exit status 3" in message and "-m x.gguf" in message
    assert "boom: bad tensor" in message and "line 39" in message and "line 5\n" not in message
    assert failure.value.returncode == 3


def test_version_is_parsed_from_the_tool(tmp_path, monkeypatch):
    _fake_tool(tmp_path, "llama-imatrix", "echo 'version: 1.2.3 (build 77, commit abc1234)' >&2\n"
                                          "echo 'built with cc 1 for test' >&2\n")
    monkeypatch.setenv(llamacpp.LLAMA_CPP_BIN_ENV, str(tmp_path))
    version = llamacpp.llama_cpp_version()
    assert (version.version, version.build, version.commit) == ("1.2.3", "77", "abc1234")
    assert version.compiler == "built with cc 1 for test" and version.package is None


@pytest.mark.llamacpp
def test_installed_tools_and_ggml_library_are_found():
    require_llamacpp_tools(llamacpp.TOOLS)
    for name in llamacpp.TOOLS:
        assert os.access(llamacpp.find_tool(name), os.X_OK)
    import ctypes

    library = ctypes.CDLL(str(llamacpp.ggml_library_path()))
    assert library.ggml_quantize_chunk is not None
    assert llamacpp.llama_cpp_version().version
