"""Choosing the runner: --offload sequential, then --device-map, then torchrun, then resident; a request the chosen
runner cannot serve is refused before any model loads, naming the options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imatrix.model.loading import ModelLoadError, ModelOptions, ModelSource
from imatrix.runners.base import CheckpointRequest, RunOptions, RunRequest
from imatrix.runners.registry import runner_for


def request(**changes) -> RunRequest:
    fields = dict(source=ModelSource(Path("model"), None), model=ModelOptions(), chunks=np.zeros((2, 8), np.int64),
                  options=RunOptions())
    return RunRequest(**{**fields, **changes})


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_the_choice_order(monkeypatch):
    assert runner_for(request()).name == "resident"
    assert runner_for(request(device_map="auto")).name == "device_map"
    assert runner_for(request(), offload="sequential").name == "sequential"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert runner_for(request()).name == "torchrun"


def test_refusals_name_the_options(monkeypatch):
    with pytest.raises(ModelLoadError, match="--offload sequential: cannot be combined with --device-map"):
        runner_for(request(device_map="auto"), offload="sequential")
    with pytest.raises(ModelLoadError, match="--offload sequential: cannot be combined with --gguf-file/.gguf"):
        runner_for(request(source=ModelSource(Path("model"), "model.Q8_0.gguf")), offload="sequential")
    monkeypatch.setenv("WORLD_SIZE", "2")
    checkpoint = CheckpointRequest(Path("o"), Path("d"), every=4)
    with pytest.raises(ModelLoadError, match="--save-every/--resume: not supported under torchrun"):
        runner_for(request(checkpoint=checkpoint))
    with pytest.raises(ModelLoadError, match="--device-map: not supported under torchrun"):
        runner_for(request(device_map="auto"))
    with pytest.raises(ModelLoadError, match="cannot be combined with torchrun with --save-every/--resume"):
        runner_for(request(checkpoint=checkpoint), offload="sequential")


def test_hybrid_composes_with_every_runner(monkeypatch):
    """--hybrid only adds the column energies read from the loaded weights: no runner refuses it."""
    assert runner_for(request(hybrid=True)).name == "resident"
    assert runner_for(request(device_map="auto", hybrid=True)).name == "device_map"
    assert runner_for(request(hybrid=True), offload="sequential").name == "sequential"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert runner_for(request(hybrid=True)).name == "torchrun"
