"""Shared fixtures: the real logs in ../shared (tests.real_components: skipped locally, a failure in CI when absent)
and the bundled example logs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests with a fixed seed, so a submission's result does not depend on luck; local runs explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REAL_LOGS = SHARED / "real-logs"
EXAMPLE_LOGS = REPO_ROOT / "examples" / "logs"


@pytest.fixture(scope="session")
def real_logs() -> Path:
    from tests.real_components import require_real_logs

    return require_real_logs()


@pytest.fixture(scope="session")
def example_logs() -> Path:
    return EXAMPLE_LOGS
