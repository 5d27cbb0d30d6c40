"""The calibration-text contract, end to end: what `logminer split` writes (parquet rows and .txt) is what
`imatrix collect` reads, the same text whichever file it is given."""

from __future__ import annotations

import polars as pl

from calibkit.calibration_text import DOCUMENT_SEPARATOR, SPLIT_NAMES, TEXT_COLUMN
from imatrix.collect.chunks import read_calibration
from logminer.schema import Session, Turn, sessions_to_frame
from logminer.split.pipeline import SplitJob, run_split


def test_split_files_and_collect_reader_agree(tmp_path):
    sessions = [Session(session_id=f"s{i}", agent="test", source_file=f"s{i}.jsonl",
                        turns=[Turn("user", f"task {i}: rename module {chr(97 + i) * 4} and fix its tests  \n"),
                               Turn("assistant", f"done with {chr(97 + i) * 4}; {i} files changed\n\n")])
                for i in range(8)]
    sessions_to_frame(sessions).write_parquet(tmp_path / "sessions.parquet")
    out = tmp_path / "split"
    run_split(SplitJob(inputs=(str(tmp_path / "sessions.parquet"),), out_dir=str(out), progress=False))
    assert {p.stem for p in out.glob("*.txt")} == set(SPLIT_NAMES)
    for name in SPLIT_NAMES:
        rows = pl.read_parquet(out / f"{name}.parquet")[TEXT_COLUMN].to_list()
        txt = (out / f"{name}.txt").read_text(encoding="utf-8")
        if not rows:
            continue
        assert txt == DOCUMENT_SEPARATOR.join(row.rstrip() for row in rows) + "\n"
        assert read_calibration(out / f"{name}.parquet") == read_calibration(out / f"{name}.txt")
    assert DOCUMENT_SEPARATOR == "\n\n"
