"""imatrix inspect / merge / convert / compare / mix through click's CliRunner: outputs, and clean errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from imatrix.cli import main
from imatrix.files.imatrix_file import Imatrix, ImatrixEntry, read_imatrix, write_dat, write_gguf
from imatrix.importance.hybrid import write_raw

Q0, Q1 = "blk.0.attn_q.weight", "blk.1.attn_q.weight"
EXPS = "blk.1.ffn_up_exps.weight"


def build(scale: float = 1.0, tokens: int = 1024) -> Imatrix:
    rng = np.random.default_rng(1)
    entries = {
        Q0: ImatrixEntry(rng.gamma(2, 1, 8) * tokens * scale, [tokens]),
        Q1: ImatrixEntry(rng.gamma(2, 1, 8) * tokens * scale, [tokens]),
        EXPS: ImatrixEntry(np.vstack([rng.gamma(2, 1, (2, 4)) * 100, np.zeros((1, 4))]), [100, 100, 0]),
    }
    return Imatrix(entries, ["calib.txt"], tokens // 512, 512)


def run(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


@pytest.fixture()
def files(tmp_path):
    write_gguf(build(), tmp_path / "a.gguf")
    with pytest.warns(UserWarning):
        write_dat(build(), tmp_path / "a.dat")
    return tmp_path


def test_inspect_text_json_and_plot(files):
    result = run("inspect", str(files / "a.gguf"), "--plot", str(files / "map.png"))
    assert result.exit_code == 0, result.output
    assert "chunks       2 × 512 tokens" in result.output and "ffn_up_exps" in result.output
    assert (files / "map.png").read_bytes()[:4] == b"\x89PNG"
    assert "Computing tensor statistics for" in result.stdout and "∑ E[A²]" in result.stdout
    # blk.1.ffn_up_exps has no blk.0 counterpart: llama.cpp's warning, on stderr
    assert f"no preceding-layer tensor for '{EXPS}'" in result.stderr
    body = json.loads(run("inspect", str(files / "a.gguf"), "--json").stdout)
    assert body["entries"] == 3 and body["datasets"] == ["calib.txt"]
    experts = next(row for row in body["tensors"] if row["name"] == EXPS)
    assert experts["counts"] == [100, 100, 0] and experts["experts_without_tokens"] == 1
    assert experts["activation_sums"] is False and body["statistics"]["legacy"] is True
    stats = {row["tensor"]: row for row in body["statistics"]["tensors"]}
    assert stats[EXPS]["elements"] == 8 and stats[Q1]["cossim"] is not None and stats[Q0]["cossim"] is None
    assert [row["layer"] for row in body["statistics"]["layers"]] == ["0", "1"]


def test_merge_mixed_formats_equals_library_merge(files):
    result = run("merge", str(files / "a.gguf"), str(files / "a.dat"), "-o", str(files / "m.gguf"))
    assert result.exit_code == 0, result.output
    merged = read_imatrix(files / "m.gguf")
    np.testing.assert_array_equal(merged.entries[Q0].counts, [1024 + 2 * 512])  # the .dat used the GGUF's chunk size
    np.testing.assert_array_equal(merged.entries[EXPS].counts, [100 + 512, 100 + 512, 0 + 512])
    np.testing.assert_allclose(merged.entries[Q0].means(), build().entries[Q0].means(), rtol=1e-6)
    assert merged.datasets == ["calib.txt", "calib.txt"] and merged.chunk_count == 4


def test_merge_chunk_size_option_sets_dat_weight(files):
    assert run("merge", str(files / "a.dat"), "-c", "128", "-o", str(files / "m.gguf")).exit_code == 0
    np.testing.assert_array_equal(read_imatrix(files / "m.gguf").entries[Q0].counts, [2 * 128])


def test_convert_round_trip_keeps_means(files):
    assert run("convert", str(files / "a.gguf"), "-o", str(files / "b.dat")).exit_code == 0
    assert run("convert", str(files / "b.dat"), "-o", str(files / "c.gguf")).exit_code == 0
    assert (files / "b.dat").read_bytes() == (files / "a.dat").read_bytes()
    back, original = read_imatrix(files / "c.gguf"), build()
    for name in (Q0, Q1):
        np.testing.assert_allclose(back.entries[name].means(), original.entries[name].means(), rtol=1e-6)
    assert run("convert", str(files / "a.gguf"), "-o", str(files / "x.bin"), "--output-format", "dat").exit_code == 0
    assert (files / "x.bin").read_bytes() == (files / "a.dat").read_bytes()


def test_compare_json(files):
    write_gguf(build(scale=1.01, tokens=1024), files / "b.gguf")
    body = json.loads(run("compare", str(files / "b.gguf"), str(files / "a.gguf"), "--json").output)
    assert body["summary"]["identical_keys"] is True
    assert body["summary"]["min_cosine"] == pytest.approx(1.0)
    q0 = next(row for row in body["tensors"] if row["name"] == Q0)
    assert q0["median_relative_error"] == pytest.approx(0.01, rel=1e-4)


def test_mix_from_raw_sidecar(files):
    imatrix = build()
    energy = {name: np.linspace(1, 2, entry.n_values) for name, entry in imatrix.entries.items()}
    write_raw(imatrix, energy, files / "raw.gguf")
    assert run("mix", str(files / "raw.gguf"), "-o", str(files / "mixed.gguf"), "--alpha", "0").exit_code == 0
    mixed = read_imatrix(files / "mixed.gguf").entries[Q0].means().ravel()
    plain = imatrix.entries[Q0].means().ravel().astype(np.float64)
    np.testing.assert_allclose(mixed, plain / plain.mean(), rtol=1e-6)


@pytest.mark.parametrize("command", ["inspect", "convert", "merge", "compare"])
def test_foreign_file_gives_one_clear_error_and_no_output(files, command):
    (files / "notes.txt").write_text("certainly not an imatrix\n" * 4)
    args = {"inspect": ["notes.txt"], "convert": ["notes.txt", "-o", "out.gguf"],
            "merge": ["a.gguf", "notes.txt", "-o", "out.gguf"], "compare": ["a.gguf", "notes.txt"]}[command]
    result = CliRunner().invoke(main, [command, *[str(files / a) if not a.startswith("-") else a for a in args]])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a ClickException, not a traceback
    assert "notes.txt" in result.output and "neither a GGUF imatrix" in result.output
    assert not (files / "out.gguf").exists()


def test_merge_of_different_models_names_the_tensor(files):
    other = build()
    other.entries[Q0] = ImatrixEntry(np.ones(16), [10])
    write_gguf(other, files / "other.gguf")
    result = CliRunner().invoke(main, ["merge", str(files / "a.gguf"), str(files / "other.gguf"),
                                       "-o", str(files / "out.gguf")])
    assert result.exit_code == 1 and f"{Q0}: {files / 'other.gguf'} has 16 values" in result.output
    assert not (files / "out.gguf").exists()


def test_mix_rejects_plain_imatrix_and_bad_alpha(files):
    result = CliRunner().invoke(main, ["mix", str(files / "a.gguf"), "-o", str(files / "o.gguf")])
    assert result.exit_code == 1 and "imatrix collect --hybrid" in result.output
    result = CliRunner().invoke(main, ["mix", str(files / "a.gguf"), "-o", str(files / "o.gguf"), "--alpha", "2"])
    assert result.exit_code == 2 and "outside [0, 1]" in result.output


def test_merge_and_convert_say_when_they_drop_activation_sums(files):
    with_sums = build()
    for entry in with_sums.entries.values():
        entry.activation_sums = np.sqrt(entry.sums)
    write_gguf(with_sums, files / "s.gguf")
    result = run("merge", str(files / "s.gguf"), str(files / "a.dat"), "-o", str(files / "m.gguf"))
    assert result.exit_code == 0, result.output
    assert f"activation sums (in_sum) dropped for 3 entries (first: {Q0}): {files / 'a.dat'} has none" in result.stderr
    assert read_imatrix(files / "m.gguf").without_activations() == sorted(with_sums.entries)
    kept = run("merge", str(files / "s.gguf"), str(files / "s.gguf"), "-o", str(files / "k.gguf"))
    assert "dropped" not in kept.stderr and read_imatrix(files / "k.gguf").without_activations() == []
    converted = run("convert", str(files / "s.gguf"), "-o", str(files / "s.dat"))
    assert converted.exit_code == 0 and "the in_sum of 3 entries is not written" in converted.stderr
