"""Split inputs: raw logs of PARALLEL_MIN_BYTES or more are ingested in ingest's worker pool, and the outputs do not
depend on the number of workers."""

from __future__ import annotations

import sys
from pathlib import Path

from logminer.split.inputs import PARALLEL_MIN_BYTES
from logminer.split.pipeline import SplitJob, run_split

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from split_throughput import generate  # noqa: E402


def test_worker_pool_gives_byte_identical_outputs(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    assert generate(raw, sessions=2000, files=8) >= PARALLEL_MIN_BYTES  # the pool is used
    outputs = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        manifest = run_split(SplitJob(inputs=(str(raw),), out_dir=str(out), progress=False, jobs=jobs))
        assert manifest["counts"]["adds_up"] and manifest["counts"]["input_sessions"] == 2000
        outputs.append({path.name: path.read_bytes() for path in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
