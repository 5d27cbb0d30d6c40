"""Dependencies as tested: the installed transformers lies in pyproject's range, and the transformers-5 APIs that
the sequential and MoE paths use (not all public) exist in it, so a transformers that moved them fails here by
name rather than deep in a collect run. The range's ends were run: 5.18.0 (tests/imatrix/collect, model, importance,
commands, runners/test_sequential and test_device_map, tests/logminer/rendering) and 5.24.0 (what the suite installs and runs on)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]

# (module, attribute): used by imatrix.runners.sequential (one layer at a time) and imatrix.collect.accumulators (MoE)
TRANSFORMERS_APIS = [
    ("transformers.conversion_mapping", "get_model_conversion_mapping"),
    ("transformers.core_model_loading", "convert_and_load_state_dict_in_model"),
    ("transformers.modeling_utils", "LoadStateDictConfig"),
    ("transformers.integrations.moe", "grouped_mm_experts_forward"),
]


def requirement(name: str) -> Requirement:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return next(r for r in map(Requirement, project["dependencies"]) if r.name == name)


def test_installed_transformers_is_in_the_declared_range():
    import transformers

    declared = requirement("transformers")
    assert Version(transformers.__version__) in declared.specifier, (transformers.__version__, str(declared))
    assert declared.specifier.contains("5.18.0") and not declared.specifier.contains("4.57.6")


@pytest.mark.parametrize("module, attribute", TRANSFORMERS_APIS)
def test_transformers_apis_of_the_sequential_and_moe_paths_exist(module, attribute):
    assert callable(getattr(importlib.import_module(module), attribute))


@pytest.mark.parametrize("method", ["_move_missing_keys_from_meta_to_device", "_initialize_missing_keys"])
def test_private_loading_steps_the_sequential_runner_calls_exist(method):
    from transformers import PreTrainedModel

    assert callable(getattr(PreTrainedModel, method))


def test_the_listed_apis_are_the_ones_the_code_imports():
    sources = "".join((REPO_ROOT / path).read_text() for path in (
        "imatrix/runners/sequential.py", "imatrix/runners/layer_loading.py", "imatrix/collect/accumulators.py"))
    imported = set(re.findall(r"from (transformers\.[\w.]+) import (\w+)", sources))
    assert imported == set(TRANSFORMERS_APIS)


def test_no_private_names_imported_from_other_packages():
    """`from datasketch.lsh import _optimal_param` and the like: a private name can vanish in any release."""
    private = []
    modules = sorted(p for package in ("calibkit", "logminer", "imatrix") for p in (REPO_ROOT / package).rglob("*.py"))
    for path in modules:
        for line_number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"\s*from ([\w.]+) import (.*)", line)
            if match and match.group(1).split(".")[0] not in ("calibkit", "logminer", "imatrix", "__future__"):
                if any(name.strip().startswith("_") for name in match.group(2).strip("()").split(",")):
                    private.append(f"{path.relative_to(REPO_ROOT)}:{line_number}: {line.strip()}")
    assert private == []
