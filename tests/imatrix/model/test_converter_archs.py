"""The converter's architecture registry (class name → GGUF arch) decides the arch; archs newer than the installed
gguf are refused. (That the table is the converter's current one: tests/conformance/test_converter_tables.py.)"""

from __future__ import annotations

import pytest
from gguf import MODEL_ARCH

from imatrix.model.naming import NamingError, arch_for_config


def test_arch_comes_from_the_converter_registry():
    class Config:
        model_type = "whatever"
        architectures = ["DeepseekV3ForCausalLM"]

    assert arch_for_config(Config) == MODEL_ARCH.DEEPSEEK2
    Config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    assert arch_for_config(Config) == MODEL_ARCH.QWEN2VL
    Config.architectures = ["MixtralForCausalLM"]
    assert arch_for_config(Config) == MODEL_ARCH.LLAMA
    Config.architectures, Config.model_type = ["NoSuchModelForCausalLM"], "no_such_model"
    with pytest.raises(NamingError, match="no_such_model.*does not convert it"):
        arch_for_config(Config)


def test_converter_arch_unknown_to_the_installed_gguf_is_refused():
    import gguf

    from imatrix.model.converter_archs import TEXT_ARCHITECTURES

    known = set(gguf.MODEL_ARCH_NAMES.values())
    newer = next((name for name, arch in TEXT_ARCHITECTURES.items() if arch not in known), None)
    if newer is None:
        return  # the installed gguf knows every arch the converter writes: nothing to refuse

    class Config:
        model_type = "x"
        architectures = [newer]

    with pytest.raises(NamingError, match="installed gguf package"):
        arch_for_config(Config)


def test_every_registry_row_gives_its_arch_or_names_the_gguf_package():
    from gguf import MODEL_ARCH_NAMES

    from imatrix.model.converter_archs import TEXT_ARCHITECTURES

    by_name = {name: arch for arch, name in MODEL_ARCH_NAMES.items()}
    for architecture, arch_name in TEXT_ARCHITECTURES.items():
        config = type("Config", (), {"model_type": "unused", "architectures": [architecture]})
        if arch_name in by_name:
            assert arch_for_config(config) == by_name[arch_name], architecture
        else:
            with pytest.raises(NamingError, match="installed gguf package"):
                arch_for_config(config)
