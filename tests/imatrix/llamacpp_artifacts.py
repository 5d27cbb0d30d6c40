"""Expensive files shared by the llama.cpp integration tests: built once per pytest session, reused by every module.

Each product is written atomically under one session folder and reused when it already exists, so the test modules
that need the same imatrix, quant or perplexity run (test_llamacpp_integration, test_evaluate) pay for it once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imatrix.llamacpp import tools as llamacpp
from tests.real_components import require_llamacpp_tools, require_model

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = REPO_ROOT / "examples" / "text" / "mixed_prose_code.txt"
CTX = 128
THREADS = 2
TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity")


def require_tools() -> None:
    """The llama.cpp tools (scripts/setup.sh installs them): skipped locally, a failure in CI when absent."""
    require_llamacpp_tools(TOOLS)


class Artifacts:
    """Lazily built files in `root`: both imatrices, IQ2_XS quants made with them, and perplexities."""

    def __init__(self, root: Path, model: Path) -> None:
        self.root = root
        self.model = model
        root.mkdir(parents=True, exist_ok=True)

    def _build(self, name: str, make) -> Path:
        target = self.root / name
        if not target.exists():
            partial = self.root / f"partial.{name}"
            make(partial)
            os.replace(partial, target)
        return target

    def theirs_imatrix(self) -> Path:
        """llama-imatrix's own GGUF imatrix of the sample text at -c 128 (all 44 chunks)."""
        return self._build("theirs.imatrix.gguf", lambda out: llamacpp.imatrix(
            self.model, TEXT, out, ctx_size=CTX, threads=THREADS))

    def ours_imatrix(self) -> Path:
        """Our `imatrix collect` on the same model, text and -c, with float64 accumulators."""
        def make(out: Path) -> None:
            command = [sys.executable, "-c", "from imatrix.cli import main; main()", "collect", str(self.model),
                       "--data", str(TEXT), "-c", str(CTX), "--accumulate", "float64", "--no-ppl",
                       "-o", str(out)]
            completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ,
                                       "OMP_NUM_THREADS": str(THREADS)}, timeout=900)
            assert completed.returncode == 0, f"imatrix collect failed:\n{completed.stdout}\n{completed.stderr}"
        return self._build("ours.imatrix.gguf", make)

    def quant(self, label: str, imatrix: Path, qtype: str = "IQ2_XS") -> Path:
        """The model requantized to `qtype` with `imatrix`; the quantize log is kept next to it."""
        def make(out: Path) -> None:
            run = llamacpp.quantize(self.model, out, qtype, imatrix=imatrix, threads=THREADS)
            (self.root / f"{label}.{qtype}.quantize.log").write_text(run.output)
        return self._build(f"{label}.{qtype}.gguf", make)

    def quantize_log(self, label: str, qtype: str = "IQ2_XS") -> str:
        return (self.root / f"{label}.{qtype}.quantize.log").read_text()

    def perplexity(self, model: Path) -> tuple[float, float, str]:
        """llama-perplexity on the sample text at -c 128 over all chunks: (PPL, error, full output)."""
        from imatrix.llamacpp.evaluate import parse_ppl_output

        def make(out: Path) -> None:
            run = llamacpp.perplexity(model, TEXT, ctx_size=CTX, threads=THREADS)
            out.write_text(json.dumps({"output": run.output}))
        record = json.loads(self._build(f"{model.name}.ppl.json", make).read_text())
        ppl, err = parse_ppl_output(record["output"], f"llama-perplexity on {model}")
        return ppl, err, record["output"]


def session_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """The one Artifacts folder of this pytest session (same path from every module)."""
    require_tools()
    model = require_model()
    return Artifacts(tmp_path_factory.getbasetemp() / "llamacpp-artifacts", model)
