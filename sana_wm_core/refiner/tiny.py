"""Tiny random refiner checkpoints in the release's `refiner/` layout, for tests and offline demos.

`build_tiny_refiner(root)` writes `root/{transformer,connectors,text_encoder,tokenizer}` exactly as
the released `SANA-WM_bidirectional/refiner/` folder is organised (diffusers/transformers formats),
with a few-hundred-thousand-parameter network. Latent channels default to 16 to pair with the tiny
LTX-2 VAE; nothing is downloaded.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch

TINY_TEXT_MAX_LEN = 128  # release: 1024; must be a multiple of the connector registers (16 here)

_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
             "<start_of_image>", "<end_of_image>", "<image_soft_token>"]


def tiny_tokenizer():
    """A character-level Gemma tokenizer built in code (byte fallback, BOS added, `<pad>` = 0)."""
    from transformers import GemmaTokenizer

    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for ch in ["\u2581"] + list(string.ascii_letters + string.digits + string.punctuation):
        vocab.setdefault(ch, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=True)


def tiny_components(latent_channels: int = 16, num_layers: int = 2, seed: int = 0) -> dict:
    """Random tiny transformer / connectors / Gemma-3 / tokenizer (eval mode, fp32)."""
    from diffusers import SanaWMLTX2RefinerTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    tok = tiny_tokenizer()
    ids = tok.convert_tokens_to_ids
    text_cfg = Gemma3TextConfig(
        vocab_size=len(tok), pad_token_id=0, eos_token_id=1, bos_token_id=2, hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        head_dim=32, query_pre_attn_scalar=32, max_position_embeddings=4096,
    )
    cfg = Gemma3Config(
        text_config=text_cfg,
        vision_config=SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=8, patch_size=2),
        mm_tokens_per_image=4, boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    torch.manual_seed(seed + 10)
    text_encoder = Gemma3ForConditionalGeneration(cfg).eval()
    torch.manual_seed(seed + 11)
    connectors = LTX2TextConnectors(
        caption_channels=64, text_proj_in_factor=3, video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=32, video_connector_num_layers=1,
        video_connector_num_learnable_registers=16, audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=32, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=16, connector_rope_base_seq_len=TINY_TEXT_MAX_LEN,
    ).eval()
    torch.manual_seed(seed + 12)
    transformer = SanaWMLTX2RefinerTransformer3DModel(
        in_channels=latent_channels, out_channels=latent_channels, num_attention_heads=2, attention_head_dim=32,
        cross_attention_dim=64, num_layers=num_layers, caption_channels=64, vae_scale_factors=(8, 32, 32),
        audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2, audio_attention_head_dim=8,
        audio_cross_attention_dim=16,
    ).eval()
    return {"transformer": transformer, "connectors": connectors, "text_encoder": text_encoder, "tokenizer": tok}


def build_tiny_refiner(root: str | Path, latent_channels: int = 16, seed: int = 0) -> Path:
    """Writes a tiny `refiner/` folder (release layout) at `root` and returns it."""
    root = Path(root)
    parts = tiny_components(latent_channels=latent_channels, seed=seed)
    parts["transformer"].save_pretrained(root / "transformer")
    parts["connectors"].save_pretrained(root / "connectors")
    parts["text_encoder"].save_pretrained(root / "text_encoder")
    parts["tokenizer"].save_pretrained(root / "tokenizer")
    # As a saved diffusers `SanaWMLTX2Refiner` records it; the loader reads it (default 1024).
    (root / "model_index.json").write_text('{"_class_name": "SanaWMLTX2Refiner", "text_max_sequence_length": %d}\n'
                                           % TINY_TEXT_MAX_LEN)
    return root
