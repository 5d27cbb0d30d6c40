"""A character-level llama-style tokenizer that transformers and llama.cpp split identically.

Why hand-built: tiny random checkpoints need a tiny vocabulary (the embedding is vocab × hidden), and the converter
accepts a BPE tokenizer.json only through a known pre-tokenizer hash or as a llama (SentencePiece-style) HF vocab.
With one token per character, no merges, no space prefix and calibration text without spaces, every tokenizer class
transformers may pick for a model type (Qwen2Tokenizer rebuilds its own byte-level pipeline from the vocabulary) and
llama.cpp's SPM tokenizer produce the same ids.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2: pad/unk, bos, eos
SPACE = "\u2581"  # SentencePiece's word-boundary mark
CHARACTERS = string.ascii_lowercase + string.digits + string.ascii_uppercase[:24]
VOCAB_SIZE = len(SPECIALS) + 256 + 1 + len(CHARACTERS)  # 320: specials, byte fallback, ▁, characters
WORDS_ALPHABET = string.ascii_lowercase + string.digits


def build_tokenizer(folder: Path) -> None:
    """Write tokenizer.json + tokenizer_config.json + special_tokens_map.json for the character vocabulary."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    vocab.update({f"<0x{b:02X}>": len(SPECIALS) + b for b in range(256)})
    for character in SPACE + CHARACTERS:
        vocab[character] = len(vocab)
    assert len(vocab) == VOCAB_SIZE
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", SPACE)
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>", add_bos_token=True, add_eos_token=False)
    fast.save_pretrained(str(folder))


def calibration_text(n_characters: int, seed: int = 0) -> str:
    """Random lowercase letters and digits on one line: every character is one token on both sides."""
    rng = random.Random(seed)
    return "".join(rng.choice(WORDS_ALPHABET) for _ in range(n_characters)) + "\n"
