"""One session for the whole conformance table: each row's checkpoint, GGUF and both imatrices are built once (in the
session's temp folder) and every test and the closing table read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import harness
from tests.conformance.architectures import Architecture
from tests.real_components import require_converter, require_llamacpp_tools

RESULTS: dict[str, str] = {}  # architecture → one-line verdict, printed by pytest_terminal_summary


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
    converter = require_converter()
    return Suite(tmp_path_factory.getbasetemp() / "conformance", converter)


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("imatrix conformance vs llama.cpp b11434 (convert_hf_to_gguf.py + llama-imatrix)")
    width = max(len(name) for name in RESULTS)
    for name, verdict in RESULTS.items():
        terminalreporter.write_line(f"{name:<{width}}  {verdict}")
