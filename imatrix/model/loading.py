"""Load a causal LM and its tokenizer with transformers: a HF folder, a .gguf file, or a folder + --gguf-file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DTYPES = ("auto", "bf16", "fp16", "fp32")


class ModelLoadError(ValueError):
    """The model cannot be loaded; the message names the path and what to do."""


@dataclass(frozen=True)
class ModelOptions:
    """Where the model is and how to load it (issue 4's --dtype/--device/--trust-remote-code/--gguf-file)."""

    model: str = "gemma3-270m"
    gguf_file: str | None = None
    dtype: str = "auto"
    device: str = "cpu"
    trust_remote_code: bool = False


@dataclass(frozen=True)
class ModelSource:
    """A resolved model location: folder plus the GGUF file inside it (None for a safetensors checkpoint)."""

    folder: Path
    gguf_file: str | None

    @property
    def gguf_path(self) -> Path | None:
        return None if self.gguf_file is None else self.folder / self.gguf_file

    @property
    def label(self) -> str:
        return str(self.gguf_path or self.folder)


def resolve_source(model: str, gguf_file: str | None = None) -> ModelSource:
    """MODEL (alias, folder or .gguf file) → folder + gguf file name, with clear errors for missing paths."""
    from imatrix.model.default_model import DEFAULT_MODEL_ALIAS, default_model_gguf

    if model == DEFAULT_MODEL_ALIAS and gguf_file is None:
        try:
            path = default_model_gguf()
        except RuntimeError as error:
            raise ModelLoadError(str(error)) from error
        return ModelSource(path.parent, path.name)
    path = Path(model)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(f"{path}: a model file must be a .gguf; give a Hugging Face folder otherwise")
        return ModelSource(path.parent, path.name)
    if not path.is_dir():
        raise ModelLoadError(f"{path}: no such model folder or .gguf file")
    if gguf_file is not None:
        if not (path / gguf_file).is_file():
            raise ModelLoadError(f"{path / gguf_file}: --gguf-file not found in the model folder")
        return ModelSource(path, gguf_file)
    if not (path / "config.json").is_file():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        hint = f"; it holds {', '.join(ggufs)}: pass --gguf-file" if ggufs else ""
        raise ModelLoadError(f"{path}: no config.json (not a Hugging Face model folder){hint}")
    return ModelSource(path, None)


def torch_dtype(name: str):
    import torch

    table = {"auto": "auto", "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if name not in table:
        raise ModelLoadError(f"--dtype {name!r}: choose one of {', '.join(DTYPES)}")
    return table[name]


def gguf_add_bos(source: ModelSource) -> bool | None:
    """tokenizer.ggml.add_bos_token of the GGUF (None for HF folders or when the key is absent)."""
    if source.gguf_path is None:
        return None
    import gguf

    field = gguf.GGUFReader(str(source.gguf_path)).get_field("tokenizer.ggml.add_bos_token")
    return None if field is None else bool(field.contents())


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(source.folder), gguf_file=source.gguf_file,
                                             trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(f"{source.label}: cannot load its tokenizer: {error}") from error


def auto_model_class(config):
    """AutoModelForCausalLM, or for the multimodal checkpoints it does not map (Qwen2.5-VL, Mistral 3, ...)
    AutoModelForImageTextToText: either way the model with the language-model head, run on token ids only."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    if type(config) in AutoModelForCausalLM._model_mapping:
        return AutoModelForCausalLM
    if type(config) in AutoModelForImageTextToText._model_mapping:
        return AutoModelForImageTextToText
    return AutoModelForCausalLM  # its own error names what transformers supports


def load_config(folder, trust_remote_code: bool = False):
    """config.json of a HF folder, or ModelLoadError naming the folder."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(f"{folder}: cannot read its config.json: {error}") from error


def model_class_for(folder, gguf_file: str | None = None, trust_remote_code: bool = False):
    if gguf_file is not None:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM
    return auto_model_class(load_config(folder, trust_remote_code))


def load_model(source: ModelSource, options: ModelOptions):
    """The causal LM in eval mode on options.device, with the cache off (each chunk is its own sequence)."""
    import torch

    try:
        device = torch.device(options.device)
    except RuntimeError as error:
        raise ModelLoadError(f"--device {options.device!r}: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {options.device}: CUDA is not available on this machine")
    try:
        model_class = model_class_for(source.folder, source.gguf_file, options.trust_remote_code)
        model = model_class.from_pretrained(
            str(source.folder), gguf_file=source.gguf_file, dtype=torch_dtype(options.dtype),
            trust_remote_code=options.trust_remote_code,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelLoadError(f"{source.label}: cannot load the model: {error}") from error
    model.to(device)
    model.eval()
    model.config.use_cache = False
    return model
