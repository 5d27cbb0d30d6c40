"""`imatrix collect` end to end on a tiny llama saved to disk, its errors, and one run on the real Gemma 3 270M."""

from __future__ import annotations

import math

import gguf
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from imatrix.cli import main
from imatrix.files.imatrix_file import read_imatrix
from tests.imatrix.collect.test_chunks import word_tokenizer, words
from tests.imatrix.tiny_models import build, expected_entries

CTX = 16


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    model, arch = build("llama")
    model.config.vocab_size = 320
    model.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder, expected_entries(model, arch)


@pytest.fixture()
def text_file(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text(words(5 * CTX + 3) + "\n")  # with BOS: 5*16+4 tokens → 5 chunks
    return path


def invoke(*args):
    return CliRunner().invoke(main, ["collect", *map(str, args), "--no-progress"], catch_exceptions=False)


def test_collect_txt_writes_llama_imatrix_gguf(tiny_model, text_file, tmp_path):
    folder, expected = tiny_model
    out = tmp_path / "tiny.imatrix.gguf"
    result = invoke(folder, "--data", text_file, "-o", out, "-c", CTX, "--batch-size", 2, "--dtype", "fp32")
    assert result.exit_code == 0, result.output
    assert "Final estimate: PPL = " in result.output
    imatrix = read_imatrix(out)
    assert {k: e.n_values for k, e in imatrix.entries.items()} == expected
    assert all(e.counts.tolist() == [5 * CTX] for e in imatrix.entries.values())
    assert (imatrix.chunk_count, imatrix.chunk_size, imatrix.datasets) == (5, CTX, [str(text_file)])
    reader = gguf.GGUFReader(str(out))
    assert reader.get_field("general.type").contents() == "imatrix"
    assert reader.get_field("imatrix.chunk_count").types == [gguf.GGUFValueType.UINT32]
    second = tmp_path / "again.gguf"
    invoke(folder, "--data", text_file, "-o", second, "-c", CTX, "--batch-size", 2, "--dtype", "fp32")
    assert second.read_bytes() == out.read_bytes()  # deterministic


def test_batch_size_does_not_change_statistics(tiny_model, text_file, tmp_path):
    folder, _ = tiny_model
    one, three = tmp_path / "one.gguf", tmp_path / "three.gguf"
    invoke(folder, "--data", text_file, "-o", one, "-c", CTX, "--batch-size", 1, "--no-ppl")
    invoke(folder, "--data", text_file, "-o", three, "-c", CTX, "--batch-size", 3, "--no-ppl")
    a, b = read_imatrix(one), read_imatrix(three)
    for key in a.entries:
        np.testing.assert_allclose(a.entries[key].sums, b.entries[key].sums, rtol=1e-4)
        assert a.entries[key].counts.tolist() == b.entries[key].counts.tolist()


def test_dat_output_and_chunk_options(tiny_model, text_file, tmp_path):
    folder, _ = tiny_model
    out = tmp_path / "tiny.dat"
    result = invoke(folder, "--data", text_file, "-o", out, "-c", CTX, "--output-format", "dat",
                    "--chunks", 2, "--chunk", 1)
    assert result.exit_code == 0, result.output
    imatrix = read_imatrix(out, chunk_size=CTX)
    assert imatrix.chunk_count == 2
    assert all(e.counts.tolist() == [2 * CTX] for e in imatrix.entries.values())


def test_hybrid_alpha_zero_keeps_plain_ratios(tiny_model, text_file, tmp_path):
    from imatrix.importance.hybrid import read_raw

    folder, _ = tiny_model
    out = tmp_path / "hybrid.gguf"
    result = invoke(folder, "--data", text_file, "-o", out, "-c", CTX, "--hybrid", "--alpha", 0)
    assert result.exit_code == 0, result.output
    plain, energy = read_raw(tmp_path / "hybrid.raw.gguf")
    mixed = read_imatrix(out)
    for key, entry in plain.entries.items():
        ratio = mixed.entries[key].means() / entry.means()
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)
    assert energy["blk.0.attn_q.weight"].shape == (1, 64)


@pytest.mark.parametrize(("args", "message"), [
    (["/nonexistent/model"], "no such model folder"),
    (["{tmp}"], "no config.json"),
])
def test_bad_model_is_a_clear_error_and_writes_nothing(args, message, text_file, tmp_path):
    out = tmp_path / "never.gguf"
    result = invoke(*[a.format(tmp=tmp_path) for a in args], "--data", text_file, "-o", out, "-c", CTX)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_corrupt_model_folder_is_a_clear_error(text_file, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    out = tmp_path / "never.gguf"
    result = invoke(folder, "--data", text_file, "-o", out, "-c", CTX)
    assert result.exit_code != 0 and str(folder) in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_short_text_is_a_clear_error(tiny_model, tmp_path):
    folder, _ = tiny_model
    short = tmp_path / "short.txt"
    short.write_text(words(10))
    out = tmp_path / "never.gguf"
    result = invoke(folder, "--data", short, "-o", out, "-c", CTX)
    assert result.exit_code != 0 and "11 tokens" in result.output and "32" in result.output
    assert not out.exists()


def test_periodic_saves_and_ppl_match_direct_computation(tiny_model):
    from transformers import AutoModelForCausalLM

    from imatrix.collect.accumulators import Accumulators, plan_targets
    from imatrix.model.naming import TensorNaming
    from imatrix.runners.base import RunOptions
    from imatrix.runners.resident import run_resident

    folder, _ = tiny_model
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    chunks = np.random.default_rng(3).integers(0, 320, (5, CTX))
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    stats, saved = Accumulators(plan.shapes(), "cpu"), []
    ppl = run_resident(model, chunks, plan, stats, RunOptions(batch_size=2, output_frequency=2, progress=False),
                       on_chunks_done=saved.append)
    assert saved == [2, 4]
    with torch.no_grad():
        logits = model(torch.from_numpy(chunks)).logits.double()
    first = CTX // 2
    log_probs = torch.log_softmax(logits[:, first:CTX - 1], dim=-1)
    nll = -log_probs.gather(-1, torch.from_numpy(chunks[:, first + 1:]).unsqueeze(-1)).squeeze(-1).flatten()
    expected = math.exp(nll.mean().item())
    assert ppl.count == 5 * (CTX - 1 - first)
    assert ppl.value == pytest.approx(expected, rel=1e-5)
    spread = math.sqrt((nll.square().mean() - nll.mean() ** 2).item() / (nll.numel() - 1)) * expected
    assert ppl.error == pytest.approx(spread, rel=1e-4)


@pytest.mark.slow
def test_real_gemma3_270m_few_chunks(tmp_path):
    from pathlib import Path

    from imatrix.collect.pipeline import CollectSettings, run_collect
    from imatrix.importance.hybrid import read_raw

    data = Path(__file__).resolve().parents[2] / "data" / "calib_small.txt"
    out = tmp_path / "gemma.imatrix.gguf"
    lines = run_collect(CollectSettings(data=data, output=out, ctx_size=128, max_chunks=4, hybrid=True, alpha=0.0,
                                        progress=False, output_frequency=0, process_output=True),
                        log=lambda line: None)
    plain, _ = read_raw(tmp_path / "gemma.imatrix.raw.gguf")
    # --process-output on the tied head: token_embd.weight, as b11434's llama-imatrix collects it
    assert len(plain.entries) == 127 and {k for k in plain.entries if not k.startswith("blk.")} == {"token_embd.weight"}
    assert plain.entries["token_embd.weight"].sums.shape == (1, 640)
    for key, entry in plain.entries.items():
        assert np.isfinite(entry.sums).all() and (entry.sums >= 0).all() and entry.sums.sum() > 0, key
        assert entry.counts.tolist() == [4 * 128]
    ppl = float(lines[-1].split("PPL = ")[1].split()[0])
    assert 5 < ppl < 60
    mixed = read_imatrix(out)
    for key, entry in plain.entries.items():
        plain_means, mixed_means = entry.means(), mixed.entries[key].means()
        live = plain_means > 0  # a few columns are exactly zero in every chunk
        assert (mixed_means[~live] == 0).all(), key
        ratio = mixed_means[live] / plain_means[live]
        np.testing.assert_allclose(ratio, np.median(ratio), rtol=1e-4)


def test_parquet_parses_special_by_default_txt_does_not(tiny_model, tmp_path):
    import polars as pl

    from imatrix.collect.pipeline import CollectSettings, load_chunks
    from imatrix.model.loading import load_tokenizer, resolve_source

    folder, _ = tiny_model
    source = resolve_source(str(folder))
    tokenizer = load_tokenizer(source)
    docs = [f"<start_of_turn> {words(20, start)}" for start in (0, 20)]
    parquet, txt = tmp_path / "calibration.parquet", tmp_path / "calibration.txt"
    pl.DataFrame({"text": docs}).write_parquet(parquet)
    txt.write_text("\n".join(docs) + "\n")

    def stream(path, parse_special=None):
        settings = CollectSettings(data=path, output=tmp_path / "x.gguf", ctx_size=4, parse_special=parse_special)
        chunks, n_tokens = load_chunks(settings, source, tokenizer)
        return chunks, n_tokens

    special_id = tokenizer.convert_tokens_to_ids("<start_of_turn>")
    parquet_chunks, parquet_tokens = stream(parquet)
    txt_chunks, txt_tokens = stream(txt)
    assert parquet_tokens == 1 + 2 * 21  # BOS + two docs of (1 control token + 20 words)
    assert txt_tokens == 1 + 2 * 23  # the marker is split into "<", "start_of_turn", ">"
    assert (parquet_chunks == special_id).sum() == 2 and (txt_chunks == special_id).sum() == 0
    assert stream(parquet, parse_special=False)[1] == txt_tokens
    assert stream(txt, parse_special=True)[1] == parquet_tokens


def test_merge_of_two_halves_equals_one_run(tiny_model, text_file, tmp_path):
    from imatrix.files.merge import merge

    folder, _ = tiny_model
    paths = {name: tmp_path / f"{name}.gguf" for name in ("whole", "first", "second")}
    common = ["-c", CTX, "--batch-size", 1, "--no-ppl"]
    invoke(folder, "--data", text_file, "-o", paths["whole"], "--chunks", 4, *common)
    invoke(folder, "--data", text_file, "-o", paths["first"], "--chunks", 2, *common)
    invoke(folder, "--data", text_file, "-o", paths["second"], "--chunk", 2, "--chunks", 2, *common)
    whole = read_imatrix(paths["whole"])
    merged = merge([read_imatrix(paths["first"]), read_imatrix(paths["second"])])
    assert merged.entries.keys() == whole.entries.keys()
    for key, entry in whole.entries.items():
        assert merged.entries[key].counts.tolist() == entry.counts.tolist() == [4 * CTX]
        np.testing.assert_allclose(merged.entries[key].sums, entry.sums, rtol=1e-5)
