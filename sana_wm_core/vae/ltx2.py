"""The LTX-2 video VAE (diffusers' `AutoencoderKLLTX2Video`): first-frame encode, latent statistics, settings.

The network itself is diffusers' class (allowed: it is the LTX-2 network); what this module owns is how
SANA-WM uses it: the normalised latent `(z - mean) * sf / std` of the posterior mode, and the reference's
tiling settings (spatial tiles 512 px / stride 448 px, time windows of 96 frames / stride 64), which change
pixels at 704x1280 and therefore must be the same as the reference's. Streaming decode lives in `stream.py`.
"""
from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from ..deps import require
from ..runtime.dtypes import auto_dtype


@dataclass(frozen=True)
class VaeTiling:
    """Tile sizes in pixels/frames; `spatial`/`temporal` switch the two kinds of tiling on or off."""

    spatial: bool = True
    tile_px: int = 512
    stride_px: int = 448
    temporal: bool = True
    tile_frames: int = 96
    stride_frames: int = 64

    def validate(self) -> None:
        if not (0 < self.stride_px <= self.tile_px):
            raise ValueError(f"VAE tiling: need 0 < stride_px <= tile_px, got {self.stride_px}/{self.tile_px}")
        if not (0 < self.stride_frames <= self.tile_frames):
            raise ValueError(f"VAE tiling: need 0 < stride_frames <= tile_frames, got "
                             f"{self.stride_frames}/{self.tile_frames}")


REFERENCE_TILING = VaeTiling()
NO_TILING = VaeTiling(spatial=False, temporal=False)
# 32-frame windows (5 latents) every 24 frames, the reference's 512 px tiles: a fixed, small decode working
# set for long clips on small machines. Window seams are blended like the reference's, over 8 frames not 32.
LOW_MEMORY_TILING = VaeTiling(tile_frames=32, stride_frames=24)
TILING_PRESETS = {"reference": REFERENCE_TILING, "low_memory": LOW_MEMORY_TILING, "off": NO_TILING}


CAUSAL_VAE_DIR = "ltx2_causal_vae"  # the causal VAE's folder in Efficient-Large-Model/SANA-WM_streaming


def _vae_folder(path: Path) -> Path:
    """Accept the VAE folder itself or a repo root that contains `vae/` or `ltx2_causal_vae/`."""
    if (path / "config.json").is_file():
        return path
    for sub in ("vae", CAUSAL_VAE_DIR):
        if (path / sub / "config.json").is_file():
            return path / sub
    raise FileNotFoundError(
        f"No LTX-2 VAE at {path}: expected vae/config.json and vae/diffusion_pytorch_model.safetensors (the "
        "`vae/` folder of Efficient-Large-Model/SANA-WM_bidirectional) or the `ltx2_causal_vae/` folder of "
        "Efficient-Large-Model/SANA-WM_streaming")


def diffusers_overrides(config: dict) -> dict:
    """Config entries diffusers' `AutoencoderKLLTX2Video` must be given to build NVlabs' causal VAE.

    NVlabs' `AutoencoderKLCausalLTX2Video` (the streaming release) names the decoder's per-block upsampler kinds
    `decoder_upsample_type` and reverses the list before building the up blocks; diffusers reads `upsample_type`
    in up-block order. Other entries share diffusers' names. A wrong order fails the strict weight load (the
    upsampler convs change shape), it never loads silently.
    """
    kinds = config.get("decoder_upsample_type")
    return {} if kinds is None else {"upsample_type": tuple(reversed(list(kinds)))}


class LTX2Vae:
    """Wraps a diffusers `AutoencoderKLLTX2Video` with SANA-WM's normalisation and tiling."""

    def __init__(self, vae: torch.nn.Module, *, tiling: VaeTiling = REFERENCE_TILING,
                 device: torch.device | str | None = None, offload_device: torch.device | str = "cpu"):
        self.vae = vae.eval().requires_grad_(False)
        self.device = torch.device(device) if device is not None else next(vae.parameters()).device
        self.offload_device = torch.device(offload_device)
        self.set_tiling(tiling)

    @classmethod
    def from_folder(cls, path: str | Path, *, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, **kw) -> "LTX2Vae":
        """Load `<repo>/vae` (or a `vae/` folder) with diffusers' LTX-2 VAE class."""
        AutoencoderKLLTX2Video = require("diffusers", "The LTX-2 video VAE", "diffusers>=0.42.1").AutoencoderKLLTX2Video

        folder = _vae_folder(Path(path))
        config = json.loads((folder / "config.json").read_text())
        cls_name = config.get("_class_name", "")
        if cls_name and "LTX2" not in cls_name:
            raise ValueError(f"{folder} holds a {cls_name}, not an LTX-2 VAE (AutoencoderKLLTX2Video)")
        dev = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        dtype = dtype or auto_dtype(dev)
        from ..weights.safetensors_file import check_safetensors_folder

        check_safetensors_folder(folder)  # a truncated file is named, not a bare deserializer error
        overrides = diffusers_overrides(config)
        vae = AutoencoderKLLTX2Video.from_pretrained(str(folder), torch_dtype=dtype, **overrides).to(dev)
        return cls(vae, device=dev, **kw)

    # -- properties ---------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def is_causal(self) -> bool:
        """True for the streaming release's causal decoder (chunks can be decoded one after another)."""
        return bool(self.vae.decoder.is_causal)

    @property
    def spatial_ratio(self) -> int:
        return int(self.vae.spatial_compression_ratio)

    @property
    def temporal_ratio(self) -> int:
        return int(self.vae.temporal_compression_ratio)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def set_tiling(self, tiling: VaeTiling) -> None:
        """Apply tile settings to the diffusers VAE (its own tiled encode/decode read these attributes)."""
        tiling.validate()
        self.tiling = tiling
        v = self.vae
        v.use_tiling = tiling.spatial
        v.tile_sample_min_height = v.tile_sample_min_width = tiling.tile_px
        v.tile_sample_stride_height = v.tile_sample_stride_width = tiling.stride_px
        v.use_framewise_encoding = v.use_framewise_decoding = tiling.temporal
        v.tile_sample_min_num_frames = tiling.tile_frames
        v.tile_sample_stride_num_frames = tiling.stride_frames

    # -- memory -------------------------------------------------------------------------------------
    def to_device(self) -> None:
        self.vae.to(self.device)

    def offload(self) -> None:
        self.vae.to(self.offload_device)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def free(self) -> None:
        self.vae = None
        gc.collect()

    # -- latent statistics ----------------------------------------------------------------------------
    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.vae.latents_mean.view(1, -1, 1, 1, 1).to(like)
        std = self.vae.latents_std.view(1, -1, 1, 1, 1).to(like)
        return mean, std

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(z)
        return (z - mean) * self.scaling_factor / std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        z = z.to(device=self.device, dtype=self.dtype)
        mean, std = self._stats(z)
        return z / self.scaling_factor * std + mean

    # -- encode ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(1,3,H,W) pixels in [-1,1] -> the normalised first-frame latent (1,C,1,H/32,W/32).

        The posterior mode (its mean), no sampling: the conditioning latent is deterministic.
        """
        if pixels.ndim != 4 or pixels.shape[0] != 1 or pixels.shape[1] != 3:
            raise ValueError(f"encode_image wants one RGB frame (1,3,H,W) in [-1,1], got {tuple(pixels.shape)}")
        h, w = pixels.shape[-2:]
        r = self.spatial_ratio
        if h % r or w % r:
            raise ValueError(f"image size {w}x{h} must be a multiple of {r} (the VAE's spatial stride)")
        x = pixels.unsqueeze(2).to(device=self.device, dtype=self.dtype)
        z = self.vae.encode(x).latent_dist.mode()
        return self.normalize(z).to(dtype or self.dtype)
