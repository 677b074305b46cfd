"""Sizes of the Pi3X network, so the official model and a tiny test copy share one architecture.

The defaults are the released `yyfz233/Pi3X` checkpoint (DINOv2 ViT-L/14 with registers, a 36-block
alternating frame/global decoder, 5-block head decoders). A checkpoint may carry its own sizes as JSON in its
safetensors metadata under `METADATA_KEY` (the tiny test copies do; the official file does not).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

METADATA_KEY = "sana_wm_pi3x_config"


@dataclass(frozen=True)
class Pi3XConfig:
    """Every width, depth and head count of Pi3X; `tiny()` keeps the structure with small numbers."""

    patch_size: int = 14
    dim: int = 1024                  # encoder width == decoder width (no projection between them)
    encoder_depth: int = 24
    encoder_heads: int = 16
    encoder_registers: int = 4
    encoder_pos_grid: int = 37       # learned position grid side (518 px / 14)
    decoder_depth: int = 36
    decoder_heads: int = 16
    decoder_registers: int = 5
    mlp_ratio: float = 4.0
    head_width: int = 1024           # point / camera / conf transformer decoders
    head_heads: int = 16
    head_depth: int = 5
    point_channels: int = 1024       # point and conf decoder output = conv head input
    camera_channels: int = 512
    metric_width: int = 512
    metric_heads: int = 8
    metric_channels: int = 512
    upsample_channels: tuple[int, ...] = (256, 128, 64)
    res_blocks: int = 2
    last_conv_channels: int = 32
    pose_inject_blocks: int = 5
    multimodal: bool = True          # depth encoder, ray embedding, pose-inject blocks (unused for intrinsics)
    rope_freq: float = 100.0

    @classmethod
    def tiny(cls) -> "Pi3XConfig":
        """Same modules and key names, widths a few dozen channels: builds and runs in well under a second on CPU."""
        return cls(dim=32, encoder_depth=2, encoder_heads=2, encoder_pos_grid=4, decoder_depth=4,
                   decoder_heads=2, head_width=32, head_heads=2, head_depth=2, point_channels=32,
                   camera_channels=16, metric_width=16, metric_heads=2, metric_channels=16,
                   upsample_channels=(16, 16, 16), last_conv_channels=8, pose_inject_blocks=2)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Pi3XConfig":
        """Reads sizes written by `to_json`; unknown fields are rejected so a stale file cannot half-load."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"Pi3X config metadata has unknown fields {extra}")
        if "upsample_channels" in data:
            data["upsample_channels"] = tuple(data["upsample_channels"])
        return cls(**data)

    def validate(self) -> "Pi3XConfig":
        """RoPE2D splits each head in a y half and an x half, each rotated in pairs: head sizes must divide by 4."""
        for label, width, heads in (("decoder", self.dim, self.decoder_heads),
                                    ("head", self.head_width, self.head_heads),
                                    ("metric", self.metric_width, self.metric_heads)):
            if width % heads or (width // heads) % 4:
                raise ValueError(f"Pi3X {label}: width {width} / {heads} heads must give a head size divisible by 4")
        if self.encoder_heads < 1 or self.dim % self.encoder_heads:
            raise ValueError(f"Pi3X encoder: width {self.dim} is not divisible by {self.encoder_heads} heads")
        if self.decoder_depth < 2:
            raise ValueError("Pi3X decoder needs at least 2 blocks (the heads read the last two)")
        for ch in self.upsample_channels:
            if (2 * ch) % 32:
                raise ValueError(f"Pi3X conv head: upsample width {ch} needs 2*width divisible by 32 (group norm)")
        return self

    def with_multimodal(self, on: bool) -> "Pi3XConfig":
        return replace(self, multimodal=on)
