"""Our `imatrix collect` on a Hugging Face folder equals llama-imatrix on llama.cpp's own conversion of it.

For every row of tests/conformance/architectures.py: same key set, each entry as long as the converted tensor's
ne0 × n_expert, equal counts (MoE: within the routing-tie tolerance), cosine of the per-column means ≥ 0.9999, and
llama-quantize IQ2_XS accepts our file. The session prints the whole table at the end.
"""

from __future__ import annotations

import pytest

from tests.conformance.architectures import ARCHITECTURES
from tests.conformance.conftest import RESULTS


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[arch.name for arch in ARCHITECTURES])
def test_collect_conforms_to_llama_imatrix(arch, suite):
    try:
        row = suite.row(arch)
    except Exception as error:
        RESULTS[arch.name] = f"FAILS: {str(error).splitlines()[0][:160]}"
        raise
    RESULTS[arch.name] = row.verdict()
    assert not row.problems(), f"{arch.name}: " + "; ".join(row.problems())
