"""llama-perplexity's own KLD run (the cross-check of `imatrix eval`): parsing its real output, model sizes;
the CLI without llama.cpp."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from imatrix.cli import main as imatrix_cli
from imatrix.llamacpp import evaluate
from tests.imatrix.llamacpp_artifacts import CTX, TEXT, THREADS, session_artifacts

EVAL_CHUNKS = 4


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    return session_artifacts(tmp_path_factory)


@pytest.fixture(scope="session")
def eval_run(artifacts):
    """One real evaluation: the 270M reference vs an IQ2_XS quant of it (llama-imatrix's imatrix), 4 chunks."""
    quant = artifacts.quant("theirs", artifacts.theirs_imatrix())
    options = evaluate.EvalOptions(ctx_size=CTX, chunks=EVAL_CHUNKS, threads=THREADS)
    return evaluate.run_eval(artifacts.model, [quant], TEXT, options), quant


def _last_chunk_row(output: str) -> list[float]:
    """The last line of the per-chunk table (chunk, PPL ± e, ln ratio ± e, KLD ± e, Δp RMS ± e %, same top ± e %)."""
    rows = re.findall(r"^\s*\d+(?:\s+[-\d.]+\s+±\s+[-\d.]+\s*%?){5}\s*$", output, flags=re.MULTILINE)
    assert rows, "no per-chunk table in llama-perplexity's output"
    return [float(number) for number in re.findall(r"[-\d.]+", rows[-1])]


@pytest.mark.slow
@pytest.mark.llamacpp
def test_parser_agrees_with_the_per_chunk_table_of_the_same_run(eval_run):
    report, quant = eval_run
    output = report.logs[quant.name]
    stats = report.rows[1].kld
    chunk, ppl, ppl_err, _, _, kld, kld_err, _, _, same_top, same_top_err = _last_chunk_row(output)
    # The table's last row is the running total over all chunks: the summary must say the same numbers.
    assert chunk == EVAL_CHUNKS
    assert stats.ppl == pytest.approx(ppl, abs=1e-4) and stats.ppl_err == pytest.approx(ppl_err, abs=1e-4)
    assert stats.mean_kld == pytest.approx(kld, abs=1e-5) and stats.mean_kld_err == pytest.approx(kld_err, abs=1e-5)
    assert stats.same_top_pct == pytest.approx(same_top, abs=1e-3)
    assert stats.same_top_err == pytest.approx(same_top_err, abs=1e-3)
    assert 0 <= stats.median_kld <= stats.p99_kld <= stats.max_kld
    # The quant run re-scores the reference's stored tokens: its PPL(base) is the reference run's PPL.
    reference = report.rows[0]
    assert stats.ppl_base == pytest.approx(reference.ppl, rel=1e-5)
    assert stats.ppl > reference.ppl  # IQ2_XS is worse than the Q4_K_M it came from


@pytest.mark.slow
@pytest.mark.llamacpp
def test_parser_names_the_missing_statistic_in_truncated_output(eval_run):
    report, quant = eval_run
    output = report.logs[quant.name]
    truncated = output[: output.index("====== KL divergence statistics")]
    with pytest.raises(evaluate.EvalError, match=r"run of .*: no 'mean_kld' statistic"):
        evaluate.parse_kld_output(truncated, f"run of {quant.name}")
    with pytest.raises(evaluate.EvalError, match="Final estimate"):
        evaluate.parse_ppl_output("perplexity: tokenizing the input ..\n")


@pytest.mark.slow
@pytest.mark.llamacpp
def test_bits_per_weight_equal_llama_quantize_report(artifacts, eval_run):
    report, quant = eval_run
    log = artifacts.quantize_log("theirs")
    reported = {kind: (float(mib), float(bpw)) for kind, mib, bpw in
                re.findall(r"(model|quant) size\s*=\s*([\d.]+) MiB \(([\d.]+) BPW\)", log)}
    for kind, row in zip(("model", "quant"), report.rows):
        mib, bpw = reported[kind]
        assert round(row.size.bits_per_weight, 2) == bpw
        assert round(row.size.tensor_bytes / 2**20, 2) == mib
        assert row.size.file_bytes == row.path.stat().st_size
    assert report.rows[1].path == quant


def test_eval_command_without_libllama_says_how_to_install(tmp_path, monkeypatch):
    from imatrix.llamacpp import libllama
    from imatrix.llamacpp import tools as llamacpp

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(llamacpp.LLAMA_CPP_BIN_ENV, raising=False)
    monkeypatch.setattr(llamacpp, "package_bin_dir", lambda: None)
    monkeypatch.setattr(libllama, "_LIBRARY", [])  # forget a library loaded by an earlier test
    model, quant = tmp_path / "m.gguf", tmp_path / "q.gguf"
    model.write_bytes(b"GGUF")
    quant.write_bytes(b"GGUF")
    result = CliRunner().invoke(imatrix_cli, ["eval", "--reference", str(model), str(quant), "--text", str(TEXT)])
    assert result.exit_code == 1
    assert "libllama shared library not found" in result.output
    assert "pip install 'calibkit[llamacpp]'" in result.output
