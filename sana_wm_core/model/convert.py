"""Key names: NVlabs original layout <-> diffusers layout (our modules use the diffusers names), and the
config inferred from tensor shapes.

Differences: the timestep MLP (`t_embedder.mlp.0/2` vs `t_embedder.linear_1/2`), two unused buffers that
only the original carries (`pos_embed`, `y_embedder.y_embedding`), the optional NVFP4 "linearised FFN"
names (`mlp.*_conv.linear` as plain matrices), and checkpoint wrappers ("generator"/"state_dict"/
"module" nesting, "model." prefixes).
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import torch

from .config import SanaWMConfig


# Cross-attention heads of the released sizes, keyed by (hidden_size, num_layers): the head count is not
# visible in any tensor shape (the q/k RMSNorms span all C channels), only in NVlabs' model registry.
# The released architectures' cross-attention heads, by NVlabs model name and by (hidden size, blocks).
KNOWN_CROSS_HEADS_BY_NAME = {"SanaMSVideoCamCtrl_1600M_P1_D20": 20}
KNOWN_CROSS_HEADS = {(2240, 20): KNOWN_CROSS_HEADS_BY_NAME["SanaMSVideoCamCtrl_1600M_P1_D20"]}
CROSS_HEADS_KEY = "blocks.0.cross_attn.q_linear.weight"

_ORIG_TO_DIFF = {"t_embedder.mlp.0.": "t_embedder.linear_1.", "t_embedder.mlp.2.": "t_embedder.linear_2."}
ORIGINAL_ONLY_KEYS = ("pos_embed", "y_embedder.y_embedding")
_LINEARISED = re.compile(r"^(blocks\.\d+\.mlp\.(?:inverted|point)_conv)\.linear\.(weight|bias)$")


def unwrap_state_dict(sd: Mapping[str, Any]) -> dict:
    """Strip training wrappers: nested "generator"/"state_dict"/"model"/"module" dicts and "model."/"module." prefixes."""
    for key in ("generator", "state_dict", "model", "module", "ema"):
        if key in sd and isinstance(sd[key], Mapping):
            return unwrap_state_dict(sd[key])
    out = {}
    for k, v in sd.items():
        for prefix in ("model.", "module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def is_original_layout(keys) -> bool:
    return any(k.startswith("t_embedder.mlp.") for k in keys)


def _shape(v: Any) -> tuple:
    return tuple(v.shape) if hasattr(v, "shape") else tuple(v)


def original_to_diffusers(sd: Mapping[str, Any]) -> dict:
    """Rename original (NVlabs) keys to diffusers names; drop the unused original-only buffers.

    Values are passed through untouched (tensors, or shapes when only shapes are known), except the
    linearised-FFN matrices which get their 1x1 conv shape back."""
    out = {}
    for k, v in unwrap_state_dict(sd).items():
        if k in ORIGINAL_ONLY_KEYS:
            continue
        for a, b in _ORIG_TO_DIFF.items():
            if k.startswith(a):
                k = b + k[len(a):]
        m = _LINEARISED.match(k)
        if m:
            k = f"{m.group(1)}.conv.{m.group(2)}"
            if m.group(2) == "weight":
                v = v.reshape(*_shape(v), 1, 1) if isinstance(v, torch.Tensor) else _shape(v) + (1, 1)
        out[k] = v
    return out


def diffusers_to_original(sd: Mapping[str, torch.Tensor], *, add_buffers: bool = True,
                          model_max_length: int = 300, image_size: int = 720, vae_stride: int = 32) -> dict:
    """Rename diffusers keys to the original layout (`dit/sana_wm_1600m_720p.safetensors`).

    With `add_buffers`, also emit the original's unused buffers: `y_embedder.y_embedding`
    (model_max_length x caption channels, zeros) and `pos_embed` (1 x (image_size/vae_stride)^2 x hidden,
    zeros), so the file has the original's full key list."""
    inv = {b: a for a, b in _ORIG_TO_DIFF.items()}
    out = {}
    for k, v in sd.items():
        for b, a in inv.items():
            if k.startswith(b):
                k = a + k[len(b):]
        out[k] = v
    if add_buffers:
        ref = sd["x_embedder.proj.weight"]
        hidden = ref.shape[0]
        caption = sd["y_embedder.y_proj.fc1.weight"].shape[1]
        grid = image_size // vae_stride
        out["y_embedder.y_embedding"] = torch.zeros(model_max_length, caption, dtype=ref.dtype)
        out["pos_embed"] = torch.zeros(1, grid * grid, hidden, dtype=ref.dtype)
    return out


def infer_config(sd: Mapping[str, Any], base: Optional[dict] = None) -> SanaWMConfig:
    """The config implied by tensor shapes (either naming; values may be tensors or shapes).

    Not visible in shapes: the cross-attention head count and `softmax_every_n` when no block has a short
    conv; `base` (e.g. a config.json dict) supplies those and any other value it names. Without it the
    cross-attention heads come from the released sizes (`KNOWN_CROSS_HEADS`); any other size is a ValueError
    naming the key and the fix."""
    sd = original_to_diffusers(sd)
    shapes = {k: _shape(v) for k, v in sd.items()}
    try:
        xw = shapes["x_embedder.proj.weight"]
    except KeyError:
        raise ValueError("not a SANA-WM Stage-1 checkpoint: no x_embedder.proj.weight "
                         f"(first keys: {sorted(shapes)[:8]})") from None
    hidden, in_ch, patch = xw[0], xw[1], tuple(xw[2:]) or (1, 1, 1)
    layers = 1 + max((int(k.split(".")[1]) for k in shapes if k.startswith("blocks.")), default=-1)
    if layers == 0:
        raise ValueError("checkpoint has no transformer blocks (blocks.*)")
    heads = shapes["blocks.0.attn.beta_proj.weight"][0]
    no_conv = [i for i in range(layers) if f"blocks.{i}.attn.conv_k.weight" not in shapes]
    cfg: dict = dict(
        in_channels=in_ch, num_layers=layers, hidden_size=hidden, linear_head_dim=hidden // heads,
        num_attention_heads=heads, patch_size=patch,
        mlp_ratio=shapes["blocks.0.mlp.inverted_conv.conv.weight"][0] / 2 / hidden,
        t_kernel_size=shapes["blocks.0.mlp.t_conv.weight"][2],
        qk_norm="blocks.0.attn.q_norm.weight" in shapes, cross_norm="blocks.0.cross_attn.q_norm.weight" in shapes,
        y_norm="attention_y_norm.weight" in shapes,
        caption_channels=shapes["y_embedder.y_proj.fc1.weight"][1],
        use_chunk_plucker_post_attn="plucker_embedder.proj.weight" in shapes,
    )
    if len(no_conv) < layers:
        conv_layer = next(i for i in range(layers) if i not in no_conv)
        cfg["conv_kernel_size"] = shapes[f"blocks.{conv_layer}.attn.conv_k.weight"][-1]
        n = _softmax_period(no_conv, layers)
        if n is None:
            raise ValueError(f"blocks without a short conv {no_conv} are not every n-th block; unsupported layout")
        cfg["softmax_every_n"] = n
    else:
        cfg["conv_kernel_size"] = 0
    if cfg["use_chunk_plucker_post_attn"]:
        cfg["chunk_plucker_channels"] = shapes["plucker_embedder.proj.weight"][1]
        with_proj = [i for i in range(layers) if f"blocks.{i}.plucker_proj.weight" in shapes]
        cfg["chunk_plucker_post_attn_blocks"] = len(with_proj)
    out_feats = shapes["final_layer.linear.weight"][0]
    if out_feats != in_ch * patch[0] * patch[1] * patch[2]:
        raise ValueError(f"final_layer predicts {out_feats} features for {in_ch} latent channels: learned-sigma "
                         "checkpoints are not supported")
    if base:
        cfg.update({k: v for k, v in base.items() if k in SanaWMConfig.__dataclass_fields__ and k != "extra"})
    if not base or "num_attention_heads" not in base:
        cfg["num_attention_heads"] = _cross_heads(shapes, hidden, layers, heads)
    return SanaWMConfig(**cfg)


def _cross_heads(shapes: Mapping[str, tuple], hidden: int, layers: int, self_heads: int) -> int:
    """Cross-attention heads when no config names them: only the released sizes (`KNOWN_CROSS_HEADS`) are known.

    The count is not visible in any tensor (the cross-attention norms span the whole width), and a wrong guess
    loads without error but computes garbage, so any other size is refused."""
    if (hidden, layers) in KNOWN_CROSS_HEADS:
        return KNOWN_CROSS_HEADS[(hidden, layers)]
    raise ValueError(
        f"SANA-WM DiT: the cross-attention head count of this checkpoint (hidden {hidden}, {layers} blocks; "
        f"self-attention has {self_heads} heads) is not a released size and cannot be read from the tensors: "
        f"{CROSS_HEADS_KEY} is {tuple(shapes.get(CROSS_HEADS_KEY, (hidden, hidden)))} for any head count. "
        "Keep the checkpoint's config.json (diffusers layout) or config.yaml with model.num_heads (original "
        "layout) beside it, or pass overrides={'num_attention_heads': N}.")


def _softmax_period(no_conv: list, layers: int) -> Optional[int]:
    if not no_conv:
        return 0
    for n in range(1, layers + 1):
        if [i for i in range(layers) if (i + 1) % n == 0] == no_conv:
            return n
    return None
