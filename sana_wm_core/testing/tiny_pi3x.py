"""A tiny random Pi3X checkpoint with the official key names, for tests and `WEIGHTS=tiny` demos.

Random weights would give a random focal length, so the x/y ray-slope output is wired to follow the head's
image-plane uv channels (a pinhole of roughly 50-65 degrees horizontal FOV), with every other weight random
and small enough to perturb the result without leaving the 25-120 degree guard.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..pi3x.checkpoint import write_checkpoint
from ..pi3x.config import Pi3XConfig
from ..pi3x.network import Pi3XNetwork

TINY_FILENAME = "pi3x_tiny.safetensors"
SLOPE_GAIN = 0.7      # x/z = SLOPE_GAIN * u: tan(FOV_x/2) ~ 0.7 * aspect / sqrt(1 + aspect^2)


def _randomise(net: Pi3XNetwork, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".gamma"):
                p.copy_(0.1 + 0.05 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1 and ("norm" in name or ".layers.0." in name or ".layers.3." in name):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.05 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = max(1, p[0].numel()) if p.ndim > 1 else 1
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 / fan_in ** 0.5 if p.ndim > 1 else 0.02))


def _wire_pinhole(net: Pi3XNetwork) -> None:
    """xy output ~= SLOPE_GAIN * (u, v) through ReLU pairs (+u, -u, +v, -v) in the last conv stack."""
    block = net.point_head.output_block[0]
    conv, last = block[0], block[2]
    uv = conv.in_channels - 2
    with torch.no_grad():
        conv.weight.mul_(0.05)
        conv.weight[:4].zero_()
        conv.bias[:4].zero_()
        for ch, (src, sign) in enumerate(((uv, 1.0), (uv, -1.0), (uv + 1, 1.0), (uv + 1, -1.0))):
            conv.weight[ch, src, 1, 1] = sign
        last.weight.mul_(0.05)
        last.bias.zero_()
        last.weight[:, :4] = 0.0
        last.weight[0, 0, 0, 0], last.weight[0, 1, 0, 0] = SLOPE_GAIN, -SLOPE_GAIN
        last.weight[1, 2, 0, 0], last.weight[1, 3, 0, 0] = SLOPE_GAIN, -SLOPE_GAIN


def build_tiny_pi3x(models_dir: str | Path, *, seed: int = 0, config: Pi3XConfig | None = None) -> Path:
    """Writes `<models_dir>/pi3x/pi3x_tiny.safetensors` (all official keys, tiny sizes in its metadata)."""
    gen = torch.Generator().manual_seed(seed)
    net = Pi3XNetwork(config or Pi3XConfig.tiny(), runtime_only=False)
    _randomise(net, gen)
    _wire_pinhole(net)
    return write_checkpoint(net, Path(models_dir) / "pi3x" / TINY_FILENAME)
