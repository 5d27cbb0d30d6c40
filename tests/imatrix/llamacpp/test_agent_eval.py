"""`imatrix eval` / `imatrix card` on the real Gemma 3 270M through libllama: per-token KLD equals a direct computation
from both models' logits, the overall KLD equals llama-perplexity's on the same tokens, a quant identical to its
reference agrees on every tool call, and the card's numbers are the eval record's."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from imatrix.cli import main as imatrix_cli
from imatrix.llamacpp import evaluate, libllama, scoring
from tests.imatrix.llamacpp_artifacts import TEXT, THREADS, session_artifacts
from tests.real_components import require_llamacpp_tools

pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]
CTX = 64


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    return session_artifacts(tmp_path_factory)


@pytest.fixture(scope="session")
def quant(artifacts):
    """Q4_0 requantized from the Q4_K_M reference (no imatrix needed: cheap, and clearly different)."""
    return artifacts.quant("plain", None, "Q4_0")


@pytest.fixture(scope="session")
def loaded(artifacts, quant):
    """The reference and the quant, loaded once for the session (CTX-token contexts)."""
    reference = libllama.LlamaModel(artifacts.model, CTX, THREADS)
    quantized = libllama.LlamaModel(quant, CTX, THREADS)
    yield reference, quantized
    reference.close()
    quantized.close()


def test_defaults_and_vocabulary_come_from_the_library(loaded):
    reference, _ = loaded
    defaults = libllama.load_library().llama_context_default_params()
    assert (defaults.n_ctx, defaults.n_batch, defaults.n_ubatch) == (512, 2048, 512)
    assert reference.n_vocab == 262144 and reference.add_bos
    tokens = reference.tokenize("<start_of_turn>user\nhé llo<end_of_turn>")
    assert reference.detokenize(tokens) == "<start_of_turn>user\nhé llo<end_of_turn>"
    assert len(reference.tokenize("<start_of_turn>")) == 1  # template markers are special tokens


def test_per_token_kld_equals_a_direct_computation_from_both_models_logits(loaded):
    reference, quantized = loaded
    tokens = np.concatenate([[reference.bos], reference.tokenize(TEXT.read_text()[:2000])])[:CTX].astype(np.int32)
    window = scoring.windows(len(tokens), CTX, stride=CTX)[0]
    scores = scoring.score_stream(reference, {"q": quantized}, tokens, [window])

    def all_logits(model):  # every position, one decode, float64
        model.clear()
        return model.decode(tokens, 0, range(CTX)).astype(np.float64)

    def log_softmax(x):
        return x - x.max(1, keepdims=True) - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))

    rows = slice(window.first_target - 1, window.end_target - 1)
    log_r, log_q = log_softmax(all_logits(reference)[rows]), log_softmax(all_logits(quantized)[rows])
    direct = (np.exp(log_r) * (log_r - log_q)).sum(1)
    assert len(scores.kld["q"]) == CTX // 2 - 1
    assert np.allclose(scores.kld["q"], direct, rtol=1e-4, atol=1e-6)
    targets = tokens[window.first_target:window.end_target]
    assert np.allclose(scores.nll["q"], -log_q[np.arange(len(targets)), targets], atol=1e-4)
    assert np.array_equal(scores.same_top["q"], log_r.argmax(1) == log_q.argmax(1))


def test_overall_kld_matches_llama_perplexity_on_the_same_tokens(artifacts, quant, tmp_path):
    options = evaluate.EvalOptions(ctx_size=CTX, chunks=4, threads=THREADS)
    base = tmp_path / "base.kld"
    report = evaluate.run_eval(artifacts.model, [quant], TEXT, options, logits_file=base)
    theirs = report.rows[1].kld
    n_ctx, tokens = evaluate.read_kld_base_tokens(base)
    assert n_ctx == CTX and len(tokens) == 4 * CTX
    with libllama.LlamaModel(artifacts.model, CTX, THREADS) as reference, \
            libllama.LlamaModel(quant, CTX, THREADS) as quantized:
        scores = scoring.score_stream(reference, {"q": quantized}, tokens, scoring.windows(len(tokens), CTX, CTX))
    # llama-perplexity stores the reference's log-probs in 16-bit steps, drops p < e^-16 and batches 32 chunks
    # per decode: hence a tolerance (measured at -c 128, 8 chunks: 0.400361 vs 0.400367, same-top and PPL equal)
    assert scores.kld["q"].mean() == pytest.approx(theirs.mean_kld, rel=2e-3, abs=1e-4)
    assert 100 * scores.same_top["q"].mean() == pytest.approx(theirs.same_top_pct, abs=0.5)
    assert np.exp(scores.nll["q"].mean()) == pytest.approx(theirs.ppl, rel=1e-3)
    assert np.exp(scores.reference_nll.mean()) == pytest.approx(theirs.ppl_base, rel=1e-3)


@pytest.fixture(scope="session")
def eval_parquet(tmp_path_factory):
    """The bundled example logs rendered with the bundled Gemma template (role spans included), as a split parquet."""
    from logminer.reading.detect import read_inputs
    from logminer.rendering.spans import render_document
    from logminer.rendering.templates import GEMMA
    from logminer.schema import Session
    from tests.conftest import EXAMPLE_LOGS
    from tests.logminer.rendering.test_chat import tiny_tokenizer

    tokenizer = tiny_tokenizer(GEMMA)
    rows = []
    for session in (e for _, _, e in read_inputs([str(EXAMPLE_LOGS)]) if isinstance(e, Session)):
        text, spans = render_document(session, tokenizer)
        rows.append({"session_id": session.session_id, "agent": session.agent, "tokens": len(text) // 4,
                     "text": text, "spans": spans})
    path = tmp_path_factory.mktemp("split") / "eval.parquet"
    pl.DataFrame(rows).write_parquet(path)
    return path


@pytest.fixture(scope="session")
def cli_run(artifacts, quant, eval_parquet, tmp_path_factory):
    """`imatrix eval` with the reference, a byte copy of it, and the Q4_0 quant: 2 windows, 2 tool calls."""
    out = tmp_path_factory.mktemp("eval")
    twin = out / "twin-of-reference.gguf"
    shutil.copyfile(artifacts.model, twin)
    result = CliRunner().invoke(imatrix_cli, [
        "eval", "-m", str(artifacts.model), str(twin), str(quant), "-f", str(eval_parquet), "-c", str(CTX),
        "--chunks", "2", "--tool-calls", "2", "--bootstrap", "200", "-t", str(THREADS), "-o", str(out / "run")])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "run.json").read_text()), result.output


def test_identical_quant_agrees_on_every_tool_call_and_has_zero_kld(cli_run):
    _out, record, _output = cli_run
    twin = record["tool_calls"]["agreement"]["twin-of-reference.gguf"]
    assert record["tool_calls"]["sites"] == 2
    assert twin["agree_reference"] == twin["calls"] == 2 and twin["agree_reference_pct"] == 100.0
    assert record["metrics"]["twin-of-reference.gguf"]["all"]["mean_kld"] == 0.0
    assert record["metrics"]["twin-of-reference.gguf"]["all"]["same_top_pct"] == 100.0
    assert {"assistant", "tool_call", "user", "template"} <= set(record["metrics"]["twin-of-reference.gguf"])
    assert record["metrics"]["plain.Q4_0.gguf"]["all"]["mean_kld"] > 0
    for call in record["tool_calls"]["calls"]:
        assert call["decoded"]["twin-of-reference.gguf"] == call["decoded"][record["reference"]]


def test_report_files_and_per_token_table_agree(cli_run):
    out, record, output = cli_run
    assert {p.name for p in out.iterdir()} >= {"run.json", "run.md", "run.csv", "run.png", "run.tokens.parquet"}
    tokens = pl.read_parquet(out / "run.tokens.parquet")
    assert tokens.height == record["data"]["scored_tokens"] == 2 * (CTX // 2 - 1)
    quant = "plain.Q4_0.gguf"
    for kind, metrics in record["metrics"][quant].items():
        rows = tokens if kind == "all" else tokens.filter(pl.col("kind") == kind)
        assert rows.height == metrics["n_tokens"]
        assert rows[f"kld:{quant}"].mean() == pytest.approx(metrics["mean_kld"], rel=1e-12)
    paired = [r for r in record["bootstrap"]["paired"] if r["a"] == "twin-of-reference.gguf"]
    assert paired and all(r["b"] == quant for r in paired)
    assert f"| {quant} |" in output and "Paired differences" in output


def test_card_numbers_equal_the_eval_records(cli_run, artifacts, tmp_path):
    out, record, _ = cli_run
    result = CliRunner().invoke(imatrix_cli, ["card", str(out / "run.json"), "--base-model", "google/gemma-3-270m",
                                              "--quantized-by", "tester", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\nbase_model: google/gemma-3-270m\nquantized_by: tester\nlicense: FILL-IN-LICENSE\n")
    assert (tmp_path / "eval.png").read_bytes() == (out / "run.png").read_bytes() and "(eval.png)" in card
    section = card.split("## Quants\n", 1)[1].strip().split("\n\n", 1)[0]  # the table under the heading
    table = section.splitlines()[2:]
    assert len(table) == len(record["models"])
    for line, model in zip(table, record["models"]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        overall = record["metrics"][model["file"]]["all"]
        assert cells[1] == model["type"] and cells[2] == f"{model['size_gib']:.3f}" and cells[3] == f"{model['bpw']:.2f}"
        assert cells[4] == f"{overall['ppl']:.4f}"
        assert cells[0] == model["file"] + (" (reference)" if model["file"] == record["reference"] else "")
        if model["file"] != record["reference"]:
            assert cells[5] == f"{overall['median_kld']:.4f}" and cells[6] == f"{overall['same_top_pct']:.2f}"
            calls = record["tool_calls"]["agreement"][model["file"]]
            assert cells[7].startswith(f"{calls['agree_reference_pct']:.1f}%")
    assert hashlib_of(out / "run.json") in card and record["llama_cpp"] in card


def hashlib_of(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_eval_command_reports_a_foreign_file_without_traceback(tmp_path, eval_parquet):
    require_llamacpp_tools(("llama-quantize",))
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_text("this is not a GGUF file\n")
    result = CliRunner().invoke(imatrix_cli, ["eval", "-m", str(not_a_model), str(not_a_model),
                                              "-f", str(eval_parquet)])
    assert result.exit_code == 1 and "notes.gguf" in result.output and "Traceback" not in result.output
