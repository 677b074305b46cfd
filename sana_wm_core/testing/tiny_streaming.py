"""The tiny SANA-WM_streaming bundle, laid out as the hub repo: `sana_dit/model.pt` (a training checkpoint
read with PyTorch's safe loader: {"generator": {"model.<NVlabs key>": ...}, "critic": {...}, "step": n}),
`ltx2_causal_vae/` (the tiny LTX-2 VAE with a causal decoder), `refiner_diffusers/{transformer,connectors}/`
and `gemma3_12b/` (Gemma-3 + tokenizer)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import tiny_config as C


def write_streaming_dit(transformer: Any, path: Path) -> Path:
    """The DiT's NVlabs-named weights under `generator` with the trainer's `model.` prefix, plus a small critic
    and a counter, as `torch.save` writes them (zip format, deterministic bytes)."""
    import torch

    from .tiny_release import original_dit_state_dict

    sd = original_dit_state_dict(transformer)
    critic = {f"model.{k}": v.clone() * 0.5 for k, v in list(sd.items())[:4]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": {f"model.{k}": v for k, v in sd.items()}, "critic": critic, "step": 1000}, path)
    return path


def write_streaming_layout(parts: Any, root: Path) -> None:
    import torch
    from diffusers import AutoencoderKLLTX2Video

    from .tiny_build import build_refiner_parts
    from .tiny_tokenizer import write_tokenizer

    write_streaming_dit(parts.transformer, root / C.STREAMING_DIT_FILE)
    with torch.random.fork_rng(devices=[]):
        vae = AutoencoderKLLTX2Video(**{**C.VAE_CONFIG, "decoder_causal": True}).eval()
    vae.load_state_dict(parts.vae.state_dict())
    vae.save_pretrained(str(root / "ltx2_causal_vae"))
    _, connectors, refiner = build_refiner_parts(parts.tokenizer, C.TINY_WEIGHTS_SEED + C.SEED_STREAMING_REFINER)
    refiner.save_pretrained(str(root / "refiner_diffusers" / "transformer"))
    connectors.save_pretrained(str(root / "refiner_diffusers" / "connectors"))
    parts.gemma3.save_pretrained(str(root / "gemma3_12b"))
    write_tokenizer(root / "gemma3_12b")
