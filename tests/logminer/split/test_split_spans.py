"""`logminer split` keeps each document's role spans: a list column that tiles the document's text."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import polars as pl

from logminer.split.pipeline import SplitJob, run_split


def test_split_parquets_carry_spans_that_tile_each_document(example_logs: Path, tmp_path: Path) -> None:
    run_split(SplitJob(inputs=(str(example_logs),), out_dir=str(tmp_path), progress=False))
    kinds: set[str] = set()
    documents = 0
    for name in ("calibration", "validation", "eval"):
        frame = pl.read_parquet(tmp_path / f"{name}.parquet")
        assert frame.schema["spans"] == pl.List(pl.Struct({"kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64}))
        for text, spans in zip(frame["text"], frame["spans"]):
            documents += 1
            assert spans is not None
            assert spans[0]["start"] == 0 and spans[-1]["end"] == len(text)
            assert all(a["end"] == b["start"] for a, b in pairwise(spans))
            kinds |= {span["kind"] for span in spans}
    assert documents >= 10
    assert {"user", "assistant", "tool_call", "tool_result", "template"} <= kinds
