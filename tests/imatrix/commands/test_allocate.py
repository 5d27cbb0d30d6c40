"""`imatrix allocate`'s command line: help without the heavy imports, and the argument errors that stop before any
work (the real-model run: tests/imatrix/importance/test_allocate.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from imatrix.cli import main
from imatrix.files.imatrix_file import write_gguf
from tests.imatrix.commands.test_files import build as build_imatrix


@pytest.fixture
def inputs(tmp_path):
    model, imatrix = tmp_path / "model.gguf", tmp_path / "agents.imatrix.gguf"
    model.write_bytes(b"GGUF placeholder, never read: the command stops at its arguments")
    write_gguf(build_imatrix(), imatrix)
    return model, imatrix


def test_help_lists_the_options_without_importing_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom imatrix.cli import main\n"
            "r = CliRunner().invoke(main, ['allocate', '--help'])\nprint(r.exit_code, 'torch' in sys.modules)\n"
            "print(r.output)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.startswith("0 False\n"), done.stderr
    for option in ("--imatrix", "--target-bpw", "--target-size", "--types", "--probe", "--dry-run", "--output"):
        assert option in done.stdout


@pytest.mark.parametrize("extra", [[], ["--target-bpw", "4", "--target-size", "1GiB"]])
def test_exactly_one_target_is_required(inputs, tmp_path, extra):
    model, imatrix = inputs
    result = CliRunner().invoke(main, ["allocate", str(model), "--imatrix", str(imatrix),
                                       "-o", str(tmp_path / "recipe.txt"), *extra])
    assert result.exit_code == 2 and "give exactly one of --target-bpw and --target-size" in result.output
    assert not (tmp_path / "recipe.txt").exists()


def test_unreadable_size_and_missing_imatrix_are_clear_errors(inputs, tmp_path):
    model, imatrix = inputs
    result = CliRunner().invoke(main, ["allocate", str(model), "--imatrix", str(imatrix), "--target-size", "ten gigs",
                                       "-o", str(tmp_path / "recipe.txt")])
    assert result.exit_code == 1 and "ten gigs" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["allocate", str(model), "--target-bpw", "4", "-o", str(tmp_path / "r.txt")])
    assert result.exit_code == 2 and "--imatrix" in result.output
    assert not (tmp_path / "recipe.txt").exists() and not (tmp_path / "r.txt").exists()
