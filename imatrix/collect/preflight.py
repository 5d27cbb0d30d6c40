"""Refuse what cannot be named before any weight is read: an empty (meta-device) copy of the model from config.json
goes through the same naming and planning as a real run. (Here, not in model.naming: it needs collect's planner,
and model must not import collect.)"""

from __future__ import annotations

from imatrix.collect.accumulators import plan_targets


def preflight(folder, fuse_qkv: bool, fuse_gate_up_exps: bool, process_output: bool, skip_unmapped: bool,
              trust_remote_code: bool = False) -> list[str]:
    """Name every linear of the model before any weight is read: an empty (meta-device) copy from config.json goes
    through the same naming and planning, so an unknown or refused architecture and an unmapped module stop the
    run up front with the module's name and what to do. Returns the warnings of model.divergence for its config."""
    import torch

    from imatrix.model.divergence import divergence_warnings
    from imatrix.model.loading import auto_model_class, load_config
    from imatrix.model.naming import TensorNaming

    config = load_config(folder, trust_remote_code)
    naming = TensorNaming.for_config(config, fuse_qkv, fuse_gate_up_exps)
    with torch.device("meta"):
        model = auto_model_class(config).from_config(config, trust_remote_code=trust_remote_code)
    plan_targets(model, naming, process_output, skip_unmapped)
    return divergence_warnings(naming.arch, config)
