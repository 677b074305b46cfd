"""An offline Gemma-style tokenizer for the tiny checkpoints, written as ordinary HF tokenizer files.

There is no hub access, so the real Gemma SentencePiece model cannot be used. This one is a
character-level byte-fallback BPE with Gemma's special-token ids (<pad>=0, <eos>=1, <bos>=2, <unk>=3),
256 `<0xNN>` byte tokens and the printable ASCII characters: 361 tokens, the vocabulary the tiny
diffusers oracle (`docs/diffusers_sanawm_tiny.py`) uses, so both tokenize every string identically.
The files load with `transformers.AutoTokenizer.from_pretrained(folder)` and add BOS, as the Stage-1
prompt slicing assumes (token 0 is BOS), and name a pad token, which both stages need.
"""
from __future__ import annotations

import json
import string
from pathlib import Path

SPACE_MARK = "\u2581"  # SentencePiece's visible space
# Ids 0..9. Only the first five are registered as special (added) tokens, like the oracle's tokenizer;
# the turn/image markers only have to exist in the vocabulary (Gemma-3 needs their ids in its config).
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                  "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
ADDED_SPECIAL_TOKENS = SPECIAL_TOKENS[:5]


def tiny_vocab() -> dict[str, int]:
    """Token -> id: the special tokens, then the 256 byte tokens, then the space mark and printable ASCII."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for ch in [SPACE_MARK, *string.ascii_letters, *string.digits, *string.punctuation]:
        if ch not in vocab:
            vocab[ch] = len(vocab)
    return vocab


def memory_tokenizer():
    """The same tokenizer built in memory as a transformers `GemmaTokenizer`, as the oracle script builds it.

    For code that wants the tokenizer object without files (the refiner's tiny components and their
    diffusers parity tests). `add_bos_token=True` must be explicit: built from a vocabulary it defaults off.
    """
    from transformers import GemmaTokenizer

    return GemmaTokenizer(vocab=tiny_vocab(), merges=[], add_bos_token=True)


def build_backend():
    """The `tokenizers.Tokenizer`: spaces become the space mark, characters map 1:1, unknown ones fall back
    to their UTF-8 bytes, and a template prepends BOS."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    vocab = tiny_vocab()
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", SPACE_MARK)
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE_MARK, " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ADDED_SPECIAL_TOKENS])
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos>:1 $B:1", special_tokens=[("<bos>", vocab["<bos>"])],
    )
    return tok


def _tokenizer_config() -> dict:
    return {
        "tokenizer_class": "GemmaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": False,
        "spaces_between_special_tokens": False,
        "model_max_length": 1000000000000000019884624838656,  # "no limit", as the real Gemma files say
    }


def write_tokenizer(folder: Path) -> Path:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(build_backend().to_str(pretty=True) + "\n", encoding="utf-8")
    cfg = _tokenizer_config()
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    special = {k: cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token", "mask_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return folder
