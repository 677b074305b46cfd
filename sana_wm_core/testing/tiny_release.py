"""The two files of the original release layout that no library writes for us: the DiT safetensors with
NVlabs key names and `config.yaml` (the release's inference config, with the tiny model's values)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import tiny_config as C


class ConverterUnavailableError(RuntimeError):
    """The diffusers -> NVlabs key converter of the DiT (`sana_wm_core.model.convert`) cannot be imported."""


def _converter():
    try:
        from ..model.convert import diffusers_to_original
    except ImportError as exc:
        raise ConverterUnavailableError(
            "cannot write the tiny original-layout DiT (dit/sana_wm_1600m_720p.safetensors): "
            "sana_wm_core.model.convert.diffusers_to_original is not importable "
            f"({exc}). It is the Stage-1 DiT key converter; until it exists only the diffusers layout "
            "of the tiny Stage-1 DiT can be written."
        ) from exc
    return diffusers_to_original


def original_dit_state_dict(transformer: Any) -> dict:
    """The DiT's weights under the NVlabs key names, as plain contiguous CPU tensors."""
    convert = _converter()
    # The original's unused buffers are sized as the release sizes them: y_embedding is
    # (model_max_length, caption channels), pos_embed is the (image_size / 32)^2 grid.
    converted = convert(dict(transformer.state_dict()), model_max_length=300, image_size=C.TINY_HEIGHT,
                        vae_stride=C.TINY_VAE_SPATIAL_STRIDE)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sorted(converted.items())}


def write_original_dit(transformer: Any, path: Path) -> Path:
    """Save the tiny DiT as one safetensors file with the original key names (fp32, like the release)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(original_dit_state_dict(transformer), str(path), metadata={"format": "pt"})
    return path


def release_config(chi_prompt: list[str], variant: str = "bidirectional") -> dict:
    """`config.yaml` content: the keys and layout of the release's config with the tiny model's values.

    variant "chunk_causal" gives SANA-WM_chunk_causal's config: the chunk-causal attention / FFN types, a
    `chunk_size` and the `chunk_flow_euler` sampler; everything else is the bidirectional release's.

    `vae_pretrained` keeps the release's hub address on purpose: a loader must use the repo folder's own
    `vae/` when it has one, and a test run is offline, so following the address would fail loudly.
    """
    dit = C.DIT_CONFIG
    out = {
        "model": {
            "model": f"SanaMSVideoCamCtrl_Tiny_P1_D{dit['num_layers']}",
            "num_heads": dit["num_attention_heads"],   # the zoo argument; no released name to look up
            "image_size": C.TINY_HEIGHT,
            "aspect_ratio_type": "ASPECT_RATIO_VIDEO_720_MS_DIV32",
            "mixed_precision": "bf16",
            "fp32_attention": True,
            "multi_scale": True,
            "camctrl_type": "BidirectionalGDNUCPESinglePathLiteLABothTriton",
            "attn_type": "BidirectionalGDNTriton",
            "softmax_every_n": dit["softmax_every_n"],
            "linear_head_dim": dit["linear_head_dim"],
            "conv_kernel_size": 4,
            "k_conv_only": True,
            "ffn_type": "GLUMBConvTemp",
            "t_kernel_size": 3,
            "mlp_acts": ["silu", "silu", None],
            "mlp_ratio": int(dit["mlp_ratio"]),
            "use_pe": True,
            "pos_embed_type": "wan_rope",
            "qk_norm": True,
            "cross_norm": True,
            "class_dropout_prob": 0.0,
            "chunk_split_strategy": "first_chunk_plus_one",
            "cam_attn_compress": 1,
            "init_cam_from_base": True,
            "use_chunk_plucker_post_attn": True,
            "chunk_plucker_channels": dit["chunk_plucker_channels"],
            "chunk_plucker_post_attn_blocks": dit["chunk_plucker_post_attn_blocks"],
        },
        "vae": {
            "vae_type": "LTX2VAE_diffusers",
            "vae_pretrained": "hf://Efficient-Large-Model/SANA-WM_bidirectional",
            "weight_dtype": "bfloat16",
            "vae_latent_dim": C.LATENT_CHANNELS,
            "vae_downsample_rate": C.TINY_VAE_SPATIAL_STRIDE,
            "vae_stride": [C.TINY_VAE_TEMPORAL_STRIDE, C.TINY_VAE_SPATIAL_STRIDE, C.TINY_VAE_SPATIAL_STRIDE],
            "use_framewise_encoding": True,
            "use_framewise_decoding": True,
            "tile_sample_stride_num_frames": 64,
            "tile_sample_min_num_frames": 96,
        },
        "text_encoder": {
            "text_encoder_name": "gemma-2-2b-it",
            "y_norm": True,
            "y_norm_scale_factor": 0.01,
            "model_max_length": 300,
            "chi_prompt": list(chi_prompt),
        },
        "scheduler": {
            "predict_flow_v": True,
            "noise_schedule": "linear_flow",
            "pred_sigma": False,
            "flow_shift": C.TINY_FLOW_SHIFT,
            "inference_flow_shift": C.TINY_FLOW_SHIFT,
            "vis_sampler": "flow_dpm-solver",
        },
    }
    if variant == "chunk_causal":
        out["model"].update(camctrl_type="ChunkCausalGDNUCPESinglePathLiteLABothTriton",
                            attn_type="ChunkCausalGDNTriton", ffn_type="ChunkGLUMBConvTemp",
                            chunk_size=C.TINY_CHUNK_SIZE)
        out["scheduler"]["vis_sampler"] = "chunk_flow_euler"
    elif variant != "bidirectional":
        raise ValueError(f"variant must be 'bidirectional' or 'chunk_causal', got {variant!r}")
    return out


def write_release_config(path: Path, chi_prompt: list[str], variant: str = "bidirectional") -> Path:
    """Write `config.yaml` (block style, keys in release order, a header saying what this file is)."""
    import yaml

    body = yaml.safe_dump(release_config(chi_prompt, variant), sort_keys=False, allow_unicode=True, width=4096,
                          default_flow_style=False)
    repo = "SANA-WM_chunk_causal" if variant == "chunk_causal" else "SANA-WM_bidirectional"
    header = ("# Tiny random-weight test checkpoint written by sana_wm_core.testing.tiny.\n"
              f"# Same keys as the {repo} release config.yaml; sizes are the tiny model's.\n")
    path = Path(path)
    path.write_text(header + body, encoding="utf-8")
    return path
