"""Tiny random refiner checkpoints in a `refiner/` folder layout, for tests and offline demos.

The networks, tokenizer, sizes and seeds all come from this package (`tiny_build`, `tiny_config`,
`tiny_tokenizer`), so these are the very weights `tiny.build_all` writes into
`SANA-WM_bidirectional/refiner/`. `build_tiny_refiner(root)` writes them on their own, with the
tokenizer in a separate `tokenizer/` folder (the release keeps it inside `text_encoder/`; the loader
accepts both). Latent channels default to 16 to pair with the tiny LTX-2 VAE; nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

from . import tiny_config as C
from .tiny_build import build_refiner_parts
from .tiny_tokenizer import memory_tokenizer as tiny_tokenizer
from .tiny_tokenizer import write_tokenizer

TINY_TEXT_MAX_LEN = C.TINY_REFINER_TEXT_MAX_LEN  # release: 1024; a multiple of the connector registers (16)

__all__ = ["TINY_TEXT_MAX_LEN", "build_tiny_refiner", "tiny_components", "tiny_tokenizer"]


def tiny_components(latent_channels: int = C.LATENT_CHANNELS, num_layers: int = C.REFINER_DIT_CONFIG["num_layers"],
                    seed: int = C.TINY_WEIGHTS_SEED) -> dict:
    """Random tiny transformer / connectors / Gemma-3 / tokenizer (eval mode, fp32), in memory."""
    tok = tiny_tokenizer()
    gemma3, connectors, transformer = build_refiner_parts(
        tok, seed, in_channels=latent_channels, out_channels=latent_channels, num_layers=num_layers)
    return {"transformer": transformer, "connectors": connectors, "text_encoder": gemma3, "tokenizer": tok}


def build_tiny_refiner(root: str | Path, latent_channels: int = C.LATENT_CHANNELS,
                       seed: int = C.TINY_WEIGHTS_SEED) -> Path:
    """Writes a tiny `refiner/` folder at `root` and returns it."""
    root = Path(root)
    parts = tiny_components(latent_channels=latent_channels, seed=seed)
    for name in ("transformer", "connectors", "text_encoder"):
        parts[name].save_pretrained(root / name)
    write_tokenizer(root / "tokenizer")
    # As a saved diffusers `SanaWMLTX2Refiner` records it; the loader reads it (default 1024).
    (root / "model_index.json").write_text('{"_class_name": "SanaWMLTX2Refiner", "text_max_sequence_length": %d}\n'
                                           % TINY_TEXT_MAX_LEN)
    return root
