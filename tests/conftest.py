"""Shared fixtures: the real logs in ../shared (skipped when absent) and the bundled example logs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REAL_LOGS = SHARED / "real-logs"
EXAMPLE_LOGS = REPO_ROOT / "examples" / "logs"


@pytest.fixture(scope="session")
def real_logs() -> Path:
    if not REAL_LOGS.is_dir():
        pytest.skip(f"real logs not available at {REAL_LOGS}")
    return REAL_LOGS


@pytest.fixture(scope="session")
def example_logs() -> Path:
    return EXAMPLE_LOGS
