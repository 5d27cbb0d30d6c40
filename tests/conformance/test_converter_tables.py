"""imatrix/model/converter_archs.py is what the pinned converter's own registry says (regenerated, not hand-edited)."""

from __future__ import annotations

import subprocess
import sys

from tests.real_components import REPO_ROOT, require_converter


def test_converter_arch_table_is_current():
    script = REPO_ROOT / "scripts" / "converter_tables.py"
    generated = subprocess.run([sys.executable, str(script), str(require_converter())], capture_output=True, text=True,
                               timeout=300, check=True).stdout
    table = (REPO_ROOT / "imatrix" / "model" / "converter_archs.py").read_text()
    assert generated == table, "regenerate: python scripts/converter_tables.py .cache/llamacpp-converter > " \
                               "imatrix/model/converter_archs.py"
