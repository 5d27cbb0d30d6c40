"""`imatrix gate` command: its α grid parser, the -m/--model spelling shared with collect and eval, and the checks
it makes before any work (model must be a GGUF, device must exist)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from imatrix.cli import main
from imatrix.commands.gate import _check_device, _open_model, gate, parse_alphas


def test_alpha_grid_is_sorted_and_deduplicated():
    assert parse_alphas("1, 0.5,0,0.5") == (0.0, 0.5, 1.0)
    assert parse_alphas("0.25") == (0.25,)


@pytest.mark.parametrize("text, message", [("0,x", "not a comma-separated list"), ("0,1.5", r"α in \[0, 1\]"),
                                           (" , ", r"α in \[0, 1\]"), ("-0.1", r"α in \[0, 1\]")])
def test_bad_alpha_grids_are_refused(text, message):
    with pytest.raises(click.BadParameter, match=message):
        parse_alphas(text)


def _files(tmp_path):
    for name in ("cal.raw.gguf", "val.raw.gguf", "model.gguf"):
        (tmp_path / name).write_bytes(b"")
    return [str(tmp_path / n) for n in ("cal.raw.gguf", "val.raw.gguf", "model.gguf")]


def test_model_option_spellings_parse_alike(tmp_path):
    cal, val, model = _files(tmp_path)
    common = [cal, "--validation", val, "--type", "IQ2_XS", "-o", str(tmp_path / "out.gguf")]
    short = gate.make_context("gate", [*common, "-m", model]).params
    assert short == gate.make_context("gate", [*common, "--model", model]).params
    assert str(short["model_path"]) == model
    help_text = CliRunner().invoke(main, ["gate", "--help"]).output
    assert "-m, --model FILE" in help_text and "-o, --output FILE" in help_text and "-t, --threads" in help_text


def test_model_must_be_a_gguf(tmp_path):
    folder_model = tmp_path / "model.safetensors"
    folder_model.write_bytes(b"")
    with pytest.raises(click.BadParameter, match="give the GGUF") as caught:
        _open_model(folder_model)
    assert caught.value.param_hint == "--model"
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("not a gguf")
    with pytest.raises(click.ClickException, match="notes.gguf: not a readable GGUF"):
        _open_model(not_gguf)


def test_device_is_checked_before_work():
    _check_device("cpu")
    with pytest.raises(click.BadParameter, match="'gpu7'"):
        _check_device("gpu7")


def test_mismatched_types_from_is_refused_before_reading_files(tmp_path):
    cal, val, model = _files(tmp_path)  # empty files: reading them would fail, so the refusal comes first
    result = CliRunner().invoke(main, ["gate", cal, "--validation", val, "-m", model, "--type", "Q8_0",
                                       "--type", "Q4_0", "--types-from", model, "-o", str(tmp_path / "o.gguf")])
    assert result.exit_code == 2 and "give one file per --type (2), got 1" in result.output
    assert not (tmp_path / "o.gguf").exists()
