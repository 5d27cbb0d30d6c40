"""imatrix eval: parsing llama-perplexity's real KLD output, model sizes, the report files and the CLI."""

from __future__ import annotations

import csv
import io
import re

import pytest
from click.testing import CliRunner

from imatrix.cli import main as imatrix_cli
from imatrix.llamacpp import evaluate
from tests.imatrix.llamacpp_artifacts import CTX, TEXT, THREADS, session_artifacts
from tests.real_components import require_llamacpp_tools

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


@pytest.mark.slow
@pytest.mark.llamacpp
def test_csv_and_markdown_carry_the_parsed_numbers(eval_run, tmp_path):
    report, quant = eval_run
    written = evaluate.write_report(report, tmp_path / "report")
    assert [path.name for path in written] == ["report.md", "report.csv", "report.png"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert [row["file"] for row in rows] == [report.rows[0].name, quant.name]
    assert rows[0]["mean_kld"] == "" and float(rows[0]["ppl"]) == report.rows[0].ppl
    stats = report.rows[1].kld
    assert float(rows[1]["mean_kld"]) == stats.mean_kld and float(rows[1]["p99_kld"]) == stats.p99_kld
    assert float(rows[1]["same_top_pct"]) == stats.same_top_pct
    markdown = (tmp_path / "report.md").read_text()
    assert f"| {quant.name} |" in markdown and f"{stats.median_kld:.4f}" in markdown
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # same report → same bytes
    again = evaluate.write_report(report, tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


@pytest.mark.slow
@pytest.mark.llamacpp
def test_eval_command_end_to_end(artifacts, eval_run, tmp_path):
    _, quant = eval_run
    result = CliRunner().invoke(imatrix_cli, [
        "eval", "--reference", str(artifacts.model), str(quant), "--text", str(TEXT), "-c", str(CTX),
        "--chunks", "2", "-t", str(THREADS), "-o", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert f"| {quant.name} |" in result.output and "chunks: 2" in result.output
    assert {p.name for p in tmp_path.iterdir()} == {"cli.md", "cli.csv", "cli.png"}


def test_eval_command_reports_a_foreign_file_without_traceback(tmp_path, monkeypatch):
    require_llamacpp_tools(("llama-perplexity", "llama-imatrix"))
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_text("this is not a GGUF file\n")
    result = CliRunner().invoke(imatrix_cli, ["eval", "--reference", str(not_a_model), str(not_a_model),
                                              "--text", str(TEXT), "-c", "128", "--chunks", "1"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "notes.gguf" in result.output and "llama-perplexity failed" in result.output
    assert "Traceback" not in result.output


def test_eval_command_without_tools_says_how_to_install(tmp_path, monkeypatch):
    from imatrix.llamacpp import tools as llamacpp

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(llamacpp.LLAMA_CPP_BIN_ENV, raising=False)
    monkeypatch.setattr(llamacpp, "package_bin_dir", lambda: None)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    result = CliRunner().invoke(imatrix_cli, ["eval", "--reference", str(model), str(model), "--text", str(TEXT)])
    assert result.exit_code == 1
    assert "llama-imatrix not found" in result.output or "llama-perplexity not found" in result.output
    assert "pip install 'calibkit[llamacpp]'" in result.output
