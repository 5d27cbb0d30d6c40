"""`--help` of both tools and every subcommand works and never imports torch or transformers (fast start-up)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imatrix.cli import COMMANDS as IMATRIX_COMMANDS
from logminer.cli import COMMANDS as LOGMINER_COMMANDS

PROBE = """
import sys
from {module} import main
try:
    main({args!r})
except SystemExit as exit:
    assert exit.code == 0, exit.code
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


def _help_imports(module: str, args: list[str]) -> str:
    code = PROBE.format(module=module, args=args)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.rsplit("HEAVY:", 1)[1].strip()


@pytest.mark.parametrize(
    "module,args",
    [("logminer.cli", ["--help"]), ("imatrix.cli", ["--help"])]
    + [("logminer.cli", [name, "--help"]) for name in LOGMINER_COMMANDS]
    + [("imatrix.cli", [name, "--help"]) for name in IMATRIX_COMMANDS],
)
def test_help_does_not_import_torch(module: str, args: list[str]) -> None:
    assert _help_imports(module, args) == ""
