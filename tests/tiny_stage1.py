"""Small Stage-1 inputs shared by the sampler tests: the tiny release's 17-frame clip, and random conditionings."""
from __future__ import annotations

import types
from pathlib import Path
from typing import Optional

import torch

from dit_oracle import camera_conditions
from sana_wm_core.sampling import Stage1Conditioning


def tiny_release_stage1(tiny_models: Path) -> types.SimpleNamespace:
    """The tiny bidirectional release loaded in fp32 on the CPU and a 17-frame 128x96 conditioning for it."""
    import test_pipeline_parity as parity
    import test_sampling_support as tiny
    from sana_wm_core.model import load_transformer, read_release
    from sana_wm_core.sampling import build_stage1_conditioning
    from sana_wm_core.text import GemmaPromptEncoder
    from sana_wm_core.vae import LTX2Vae

    repo = tiny_models / "sana_wm" / "SANA-WM_bidirectional"
    rel = read_release(repo)
    dit = load_transformer(rel.dit_path, dtype="fp32", device="cpu")
    text = GemmaPromptEncoder.from_folder(tiny_models / "text_encoders" / "gemma-2-2b-it", dtype=torch.float32,
                                          device="cpu", chi_prompt=rel.chi_prompt)
    vae = LTX2Vae.from_folder(repo, dtype=torch.float32, device="cpu")
    cond = build_stage1_conditioning(tiny.image(), parity._camera(), text, vae, tiny.PROMPT, num_frames=17,
                                     height=96, width=128)
    return types.SimpleNamespace(release=rel, dit=dit, cond=cond, shift=rel.flow_shift)


def random_conditioning(L: int, *, channels: int, h: int, w: int, text_tokens: int, seed: int = 0,
                        negative: bool = True) -> Stage1Conditioning:
    """A random Stage-1 conditioning of L latent frames (the last two prompt tokens padded)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(1, text_tokens, dtype=torch.long)
    mask[:, -2:] = 0
    prompt = torch.randn(1, 1, text_tokens, 64, generator=g)
    neg: Optional[torch.Tensor] = torch.randn(1, 1, text_tokens, 64, generator=g) if negative else None
    return Stage1Conditioning(
        prompt_embeds=prompt, prompt_mask=mask,
        negative_embeds=neg, negative_mask=torch.ones(1, text_tokens, dtype=torch.long) if negative else None,
        image_latent=torch.randn(1, channels, 1, h, w, generator=g), raymap=camera_conditions(1, L, h, w, seed=seed)[0],
        chunk_plucker=torch.randn(48, L, h, w, generator=g), num_frames=8 * (L - 1) + 1, height=32 * h, width=32 * w)
