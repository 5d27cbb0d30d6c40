"""Which runner serves a collection request: the one table of runners, and the rule that picks one.

To add a runner, write its module (a class with base.Runner's methods) and give it a row here.
"""

from __future__ import annotations

from imatrix.model.loading import ModelLoadError
from imatrix.runners.base import Runner, RunRequest


def runner_for(request: RunRequest, offload: str = "none") -> Runner:
    """--offload sequential, else --device-map, else torchrun's WORLD_SIZE > 1, else the resident runner; refuses
    (before any model is loaded) a request the chosen runner cannot serve, naming the options."""
    from imatrix.runners.device_map import DeviceMapRunner
    from imatrix.runners.distributed import DistributedRunner, World
    from imatrix.runners.resident import ResidentRunner
    from imatrix.runners.sequential import SequentialRunner

    choices: tuple[tuple[bool, type], ...] = (
        (offload == "sequential", SequentialRunner),
        (bool(request.device_map), DeviceMapRunner),
        (World.from_env().active, DistributedRunner),
        (True, ResidentRunner),
    )
    runner = next(cls for wanted, cls in choices if wanted)()
    refusal = runner.refusal(request)
    if refusal is not None:
        raise ModelLoadError(refusal)
    return runner
