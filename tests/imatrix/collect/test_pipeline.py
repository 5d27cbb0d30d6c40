"""The collect pipeline called as a library: the output and, with --hybrid, the raw sidecar whose re-mix equals the
output; the summary says what was done; legacy .dat output; the runner request mirrors the settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imatrix.collect.pipeline import CollectSettings, raw_sidecar_path, run_collect, run_request
from imatrix.files.imatrix_file import read_imatrix
from imatrix.importance.hybrid import mix, read_raw
from tests.imatrix.collect.test_checkpoint import BATCH, CHUNKS, CTX, text_file, tiny_folder  # noqa: F401 - fixtures


def settings(folder, text, output, **changes) -> CollectSettings:
    return CollectSettings(data=text, output=output, model=str(folder), ctx_size=CTX, batch_size=BATCH, dtype="fp32",
                           progress=False, **changes)


def test_raw_sidecar_names():
    assert raw_sidecar_path(Path("out/m.imatrix.gguf")) == Path("out/m.imatrix.raw.gguf")
    assert raw_sidecar_path(Path("m.dat")) == Path("m.dat.raw.gguf")


def test_hybrid_run_writes_output_and_a_sidecar_that_remixes_to_it(tiny_folder, text_file, tmp_path):  # noqa: F811
    output = tmp_path / "h.imatrix.gguf"
    log: list[str] = []
    lines = run_collect(settings(tiny_folder, text_file, output, hybrid=True, alpha=0.25), log=log.append)
    raw, energy = read_raw(raw_sidecar_path(output))
    written = read_imatrix(output)
    remixed = mix(raw, energy, 0.25)
    assert set(written.entries) == set(remixed.entries) and written.chunk_count == CHUNKS
    for name, entry in written.entries.items():
        np.testing.assert_array_equal(entry.sums, remixed.entries[name].sums)
        np.testing.assert_array_equal(entry.counts, remixed.entries[name].counts)
    assert lines[0].startswith(f"{len(written.entries)} entries, {CHUNKS} chunks x {CTX} tokens")
    assert lines[1].startswith("hybrid alpha 0.25") and lines[2].startswith("Final estimate: PPL = ")
    assert any(f"→ {CHUNKS} chunks of {CTX}" in line for line in log)
    assert not list(tmp_path.glob("*.checkpoint.*"))


def test_dat_output_has_the_gguf_numbers(tiny_folder, text_file, tmp_path):  # noqa: F811
    run_collect(settings(tiny_folder, text_file, tmp_path / "a.gguf", compute_ppl=False), log=lambda _: None)
    run_collect(settings(tiny_folder, text_file, tmp_path / "a.dat", output_format="dat", compute_ppl=False),
                log=lambda _: None)
    gguf, dat = read_imatrix(tmp_path / "a.gguf"), read_imatrix(tmp_path / "a.dat", chunk_size=CTX)
    assert set(gguf.entries) == set(dat.entries)
    dense = [name for name, entry in gguf.entries.items() if entry.sums.shape[0] == 1]
    assert dense and len(dense) < len(gguf.entries)  # the tiny MoE has both kinds
    for name, entry in gguf.entries.items():
        assert dat.entries[name].sums.size == entry.sums.size  # .dat keeps experts flat
    for name in dense:  # per-column means survive the legacy format (its one ncall fits a dense tensor exactly)
        ours, legacy = gguf.entries[name], dat.entries[name]
        np.testing.assert_allclose(legacy.sums / legacy.counts[:, None], ours.sums / ours.counts[:, None], rtol=1e-6)


def test_request_mirrors_the_settings(tiny_folder, text_file, tmp_path):  # noqa: F811
    chosen = settings(tiny_folder, text_file, tmp_path / "o.gguf", accumulate="float64", save_every=4,
                      device_map="auto", skip_chunks=2)
    request = run_request(chosen, source=None, chunks=np.zeros((3, CTX), np.int64), log=print)
    assert (request.options.batch_size, request.options.compute_ppl, request.accumulate) == (BATCH, True, "float64")
    assert (request.device_map, request.checkpoint.every, request.checkpoint.skip_chunks) == ("auto", 4, 2)
    assert request.datasets == (str(text_file),) and request.model.dtype == "fp32"
