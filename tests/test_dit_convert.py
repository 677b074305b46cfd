"""Key conversion both ways, the full-size original key list of dit_spec.md §3, and config inference."""
from __future__ import annotations

import torch

from dit_oracle import make_pair
from sana_wm_core.model import (SanaWMConfig, SanaWMTransformer, diffusers_to_original, infer_config,
                                original_to_diffusers)

C, T6, FF = 2240, 13440, 6720


def spec_keys() -> dict:
    """The released checkpoint's keys and shapes, as tabulated in docs/dit_spec.md §3."""
    k = {
        "x_embedder.proj.weight": (C, 128, 1, 1, 1), "x_embedder.proj.bias": (C,),
        "plucker_embedder.proj.weight": (C, 48, 1, 1, 1), "plucker_embedder.proj.bias": (C,),
        "raymap_embedder.proj.weight": (C, 3, 1, 1, 1), "raymap_embedder.proj.bias": (C,),
        "t_embedder.mlp.0.weight": (C, 256), "t_embedder.mlp.0.bias": (C,),
        "t_embedder.mlp.2.weight": (C, C), "t_embedder.mlp.2.bias": (C,),
        "t_block.1.weight": (T6, C), "t_block.1.bias": (T6,),
        "y_embedder.y_proj.fc1.weight": (C, 2304), "y_embedder.y_proj.fc1.bias": (C,),
        "y_embedder.y_proj.fc2.weight": (C, C), "y_embedder.y_proj.fc2.bias": (C,),
        "y_embedder.y_embedding": (300, 2304), "attention_y_norm.weight": (C,),
        "final_layer.linear.weight": (128, C), "final_layer.linear.bias": (128,),
        "final_layer.scale_shift_table": (2, C), "pos_embed": (1, 484, C),
    }
    for i in range(20):
        softmax = i in (3, 7, 11, 15, 19)
        b = {
            "scale_shift_table": (6, C), "plucker_proj.weight": (C, C), "plucker_proj.bias": (C,),
            "attn.qkv.weight": (3 * C, C), "attn.proj.weight": (C, C), "attn.proj.bias": (C,),
            "attn.q_norm.weight": (C,), "attn.k_norm.weight": (C,),
            "attn.beta_proj.weight": (20, C), "attn.beta_proj.bias": (20,),
            "attn.gate_proj.weight": (20, C), "attn.gate_proj.bias": (20,),
            "attn.A_log": (20,), "attn.dt_bias": (20,), "attn.recall_gate": (1,),
            "attn.output_gate.weight": (C, C), "attn.output_gate.bias": (C,),
            "attn.out_proj_cam.weight": (C, C), "attn.out_proj_cam.bias": (C,),
            "attn.q_norm_cam.weight": (C,), "attn.k_norm_cam.weight": (C,),
            "cross_attn.q_linear.weight": (C, C), "cross_attn.q_linear.bias": (C,),
            "cross_attn.kv_linear.weight": (2 * C, C), "cross_attn.kv_linear.bias": (2 * C,),
            "cross_attn.proj.weight": (C, C), "cross_attn.proj.bias": (C,),
            "cross_attn.q_norm.weight": (C,), "cross_attn.k_norm.weight": (C,),
            "mlp.inverted_conv.conv.weight": (T6, C, 1, 1), "mlp.inverted_conv.conv.bias": (T6,),
            "mlp.depth_conv.conv.weight": (T6, 1, 3, 3), "mlp.depth_conv.conv.bias": (T6,),
            "mlp.point_conv.conv.weight": (C, FF, 1, 1), "mlp.t_conv.weight": (C, C, 3, 1),
        }
        for p in ("q", "k", "v"):
            b[f"attn.{p}_proj_cam.weight"] = (C, C)
            b[f"attn.{p}_proj_cam.bias"] = (C,)
        if not softmax:
            b["attn.conv_k.weight"] = (C, 1, 4)
            b["attn.conv_k_cam.weight"] = (C, 1, 4)
        k.update({f"blocks.{i}.{n}": s for n, s in b.items()})
    return k


def test_full_size_original_names_match_spec():
    with torch.device("meta"):
        model = SanaWMTransformer(SanaWMConfig())
    orig = diffusers_to_original(model.state_dict())
    got = {k: tuple(v.shape) for k, v in orig.items()}
    want = spec_keys()
    assert sorted(set(got) ^ set(want)) == []
    assert {k: s for k, s in got.items() if want[k] != s} == {}
    n_params = sum(v.numel() for k, v in model.named_parameters())
    assert n_params == 2_661_800_448  # dit_spec.md's count


def test_infer_config_full_size_from_shapes():
    cfg = infer_config(spec_keys())
    assert cfg.softmax_blocks == [3, 7, 11, 15, 19]
    ref = SanaWMConfig()
    for f in ("in_channels", "num_layers", "hidden_size", "linear_head_dim", "num_attention_heads", "mlp_ratio",
              "caption_channels", "chunk_plucker_channels", "chunk_plucker_post_attn_blocks", "conv_kernel_size"):
        assert getattr(cfg, f) == getattr(ref, f), f


def test_round_trip_on_diffusers_state_dict():
    _, ref = make_pair(0)
    sd = ref.state_dict()
    orig = diffusers_to_original(sd)
    assert "t_embedder.mlp.0.weight" in orig and "t_embedder.linear_1.weight" not in orig
    back = original_to_diffusers(orig)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    assert diffusers_to_original(sd, add_buffers=False).keys() == {k for k in orig if k not in
                                                                   ("pos_embed", "y_embedder.y_embedding")}


def test_wrappers_and_linearised_ffn_names():
    _, ref = make_pair(0)
    sd = diffusers_to_original(ref.state_dict())
    wrapped = {"state_dict": {f"model.{k}": v for k, v in sd.items()}}
    w = sd["blocks.0.mlp.inverted_conv.conv.weight"]
    wrapped["state_dict"]["model.blocks.0.mlp.inverted_conv.linear.weight"] = w[:, :, 0, 0]
    del wrapped["state_dict"]["model.blocks.0.mlp.inverted_conv.conv.weight"]
    back = original_to_diffusers(wrapped)
    assert torch.equal(back["blocks.0.mlp.inverted_conv.conv.weight"], w)
    assert set(back) == set(ref.state_dict())
