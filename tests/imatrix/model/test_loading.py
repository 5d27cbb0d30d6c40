"""Model loading: MODEL resolves to folder + GGUF file with errors that say what to pass, dtypes map to torch's, a
saved tiny model loads in eval mode with the cache off and equal weights, and a GGUF's add-BOS key is read
(absent: None)."""

from __future__ import annotations

import pytest
import torch

from imatrix.model.loading import (
    ModelLoadError,
    ModelOptions,
    ModelSource,
    gguf_add_bos,
    load_model,
    load_tokenizer,
    resolve_source,
    torch_dtype,
)
from tests.imatrix.collect.test_chunks import word_tokenizer
from tests.imatrix.tiny_models import build


def test_sources_and_their_errors(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert resolve_source(str(tmp_path / "hf")) == ModelSource(tmp_path / "hf", None)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_source(str(tmp_path / "m.gguf")) == ModelSource(tmp_path, "m.gguf")
    (tmp_path / "ggufs").mkdir()
    (tmp_path / "ggufs" / "a.gguf").write_bytes(b"GGUF")
    assert resolve_source(str(tmp_path / "ggufs"), "a.gguf").gguf_path == tmp_path / "ggufs" / "a.gguf"
    cases = [((str(tmp_path / "ggufs"),), "no config.json .*it holds a.gguf: pass --gguf-file"),
             ((str(tmp_path / "ggufs"), "b.gguf"), "b.gguf: --gguf-file not found"),
             ((str(tmp_path / "nothing"),), "no such model folder or .gguf file"),
             ((str(tmp_path / "hf" / "config.json"),), "a model file must be a .gguf")]
    for args, message in cases:
        with pytest.raises(ModelLoadError, match=message):
            resolve_source(*args)


def test_dtypes():
    assert [torch_dtype(n) for n in ("auto", "bf16", "fp16", "fp32")] == [
        "auto", torch.bfloat16, torch.float16, torch.float32]
    with pytest.raises(ModelLoadError, match="--dtype 'int4'"):
        torch_dtype("int4")


def test_saved_model_loads_as_saved(tmp_path):
    model, _ = build("llama")
    model.save_pretrained(tmp_path)
    word_tokenizer().save_pretrained(tmp_path)
    source = resolve_source(str(tmp_path))
    loaded = load_model(source, ModelOptions(model=str(tmp_path), dtype="fp32"))
    assert not loaded.training and loaded.config.use_cache is False
    reference = model.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in loaded.state_dict().items())
    assert load_tokenizer(source)("hello world")["input_ids"]
    assert gguf_add_bos(source) is None
    with pytest.raises(ModelLoadError, match="--device 'quantum'"):
        load_model(source, ModelOptions(device="quantum"))
    with pytest.raises(ModelLoadError, match="cannot load the model"):
        load_model(ModelSource(tmp_path / "empty", None), ModelOptions())


@pytest.mark.parametrize("value", [True, False, None])
def test_gguf_add_bos_key(tmp_path, value):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    if value is not None:
        writer.add_add_bos_token(value)
    writer.add_tensor("token_embd.weight", np.zeros((2, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_add_bos(ModelSource(tmp_path, "m.gguf")) is value
