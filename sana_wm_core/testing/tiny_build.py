"""Build the tiny random SANA-WM components in memory (diffusers / transformers classes, fixed seeds).

These are the parts whose file formats belong to diffusers and transformers (LTX-2 VAE, LTX-2 refiner,
connectors, Gemma-2, Gemma-3) plus diffusers' Stage-1 DiT, which the original layout re-keys to the
NVlabs names. Heavy imports happen inside the functions so importing this module stays cheap.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

from . import tiny_config as C


@dataclass
class TinyComponents:
    """Every tiny model, built once; `dit_zero_filled` names the DiT params that were re-randomised."""

    tokenizer: Any
    gemma2: Any            # transformers Gemma2Model (Stage-1 text encoder)
    vae: Any               # diffusers AutoencoderKLLTX2Video
    transformer: Any       # diffusers SanaWMTransformer3DModel
    scheduler: Any         # diffusers FlowMatchEulerDiscreteScheduler(shift=TINY_FLOW_SHIFT)
    gemma3: Any            # transformers Gemma3ForConditionalGeneration (refiner text encoder, eager attention)
    connectors: Any        # diffusers LTX2TextConnectors
    refiner_transformer: Any  # diffusers SanaWMLTX2RefinerTransformer3DModel
    dit_zero_filled: list[str]


@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """Silence diffusers/transformers warnings and progress bars for the duration, then restore them."""
    import diffusers
    import transformers

    dlog, tlog = diffusers.utils.logging, transformers.utils.logging
    saved = (dlog.get_verbosity(), tlog.get_verbosity(), dlog.is_progress_bar_enabled(),
             tlog.is_progress_bar_enabled())
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(saved[0])
        tlog.set_verbosity(saved[1])
        if saved[2]:
            dlog.enable_progress_bar()
        if saved[3]:
            tlog.enable_progress_bar()


def refill_zero_params_(model: Any, seed: int, std: float = C.DIT_ZERO_INIT_STD) -> list[str]:
    """Give every all-zero floating parameter N(0, std) values drawn from one seeded generator.

    The DiT zero-initialises its Plücker embedder and temporal short convolutions; left at zero, the
    camera Plücker input and those convolutions would not influence the output, and tests could not
    tell a broken branch from a working one. Parameters are visited in `named_parameters()` order.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    refilled = []
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.is_floating_point() and param.numel() and not bool(param.any()):
                noise = torch.randn(param.shape, generator=gen, dtype=torch.float32) * std
                param.copy_(noise.to(param.dtype))
                refilled.append(name)
    return refilled


def _gemma3_config(tokenizer: Any) -> Any:
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    ids = tokenizer.convert_tokens_to_ids
    cfg = Gemma3Config(
        text_config=Gemma3TextConfig(vocab_size=len(tokenizer), **C.GEMMA3_TEXT_CONFIG),
        vision_config=SiglipVisionConfig(**C.SIGLIP_CONFIG),  # Gemma-3 needs a vision tower even for text
        mm_tokens_per_image=C.GEMMA3_MM_TOKENS_PER_IMAGE,
        boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    cfg._attn_implementation = "eager"  # SDPA (the default) differs from eager at ~1e-7
    return cfg


def build_refiner_parts(tokenizer: Any, seed: int = C.TINY_WEIGHTS_SEED,
                        **refiner_overrides: Any) -> tuple[Any, Any, Any]:
    """The Stage-2 parts alone: (Gemma-3, text connectors, refiner DiT), seeds `seed + 10/11/12`.

    `build_components` gets its refiner from here, so the refiner's own tests (`tiny_refiner`) use the very
    weights `build_all` writes. `refiner_overrides` replace `REFINER_DIT_CONFIG` entries (e.g. `num_layers`).
    The caller's torch RNG is left untouched.
    """
    import torch
    from diffusers import SanaWMLTX2RefinerTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import Gemma3ForConditionalGeneration

    with torch.random.fork_rng(devices=[]), quiet_hf():
        torch.manual_seed(seed + C.SEED_GEMMA3)
        gemma3 = Gemma3ForConditionalGeneration(_gemma3_config(tokenizer)).eval()
        torch.manual_seed(seed + C.SEED_CONNECTORS)
        connectors = LTX2TextConnectors(**C.CONNECTORS_CONFIG).eval()
        torch.manual_seed(seed + C.SEED_REFINER)
        transformer = SanaWMLTX2RefinerTransformer3DModel(**{**C.REFINER_DIT_CONFIG, **refiner_overrides}).eval()
    return gemma3, connectors, transformer


def build_components(tokenizer: Any, seed: int = C.TINY_WEIGHTS_SEED) -> TinyComponents:
    """Construct every tiny model with component seeds `seed + k`; the caller's torch RNG is left untouched."""
    import torch
    from diffusers import AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler, SanaWMTransformer3DModel
    from transformers import Gemma2Config, Gemma2Model

    with torch.random.fork_rng(devices=[]), quiet_hf():
        torch.manual_seed(seed + C.SEED_GEMMA2)
        gemma2 = Gemma2Model(Gemma2Config(vocab_size=len(tokenizer), **C.GEMMA2_CONFIG)).eval()

        torch.manual_seed(seed + C.SEED_VAE)
        vae = AutoencoderKLLTX2Video(**C.VAE_CONFIG).eval()
        stats = torch.Generator().manual_seed(seed + C.SEED_VAE_STATS)
        with torch.no_grad():  # non-trivial latent statistics, so the normalisation is exercised
            vae.latents_mean.copy_(0.1 * torch.randn(C.LATENT_CHANNELS, generator=stats))
            vae.latents_std.copy_(0.5 + torch.rand(C.LATENT_CHANNELS, generator=stats))

        torch.manual_seed(seed + C.SEED_DIT)
        transformer = SanaWMTransformer3DModel(**C.DIT_CONFIG).eval()
        filled = refill_zero_params_(transformer, seed + C.SEED_DIT_ZERO_FILL)

    gemma3, connectors, refiner_transformer = build_refiner_parts(tokenizer, seed)
    return TinyComponents(
        tokenizer=tokenizer, gemma2=gemma2, vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=C.TINY_FLOW_SHIFT), gemma3=gemma3,
        connectors=connectors, refiner_transformer=refiner_transformer, dit_zero_filled=filled,
    )


def gemma2_causal_lm(gemma2: Any) -> Any:
    """Wrap the Stage-1 encoder as `Gemma2ForCausalLM` (tied head), the class the gemma-2-2b-it repo holds,
    so both `Gemma2Model.from_pretrained` and `AutoModelForCausalLM(...).get_decoder()` load it."""
    import torch
    from transformers import Gemma2ForCausalLM

    with torch.random.fork_rng(devices=[]), quiet_hf():
        lm = Gemma2ForCausalLM(gemma2.config).eval()
        lm.model.load_state_dict(gemma2.state_dict())
    return lm
