"""The original-layout DiT file: NVlabs key names and shapes (docs/dit_spec.md section 3) for the tiny
config, and the same weights as the diffusers layout's transformer."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from sana_wm_core.testing import tiny_config as C

# Buffers the spec lists but could not confirm in the released file: allowed, checked when present.
OPTIONAL = {"pos_embed", "y_embedder.y_embedding"}


def expected_original_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the NVlabs SanaMSVideoCamCtrl state dict, written from the spec's tables."""
    d = C.DIT_CONFIG
    c, cin, cap = d["hidden_size"], d["in_channels"], d["caption_channels"]
    heads, ffn = c // d["linear_head_dim"], int(c * d["mlp_ratio"])
    shapes: dict[str, tuple[int, ...]] = {
        "x_embedder.proj.weight": (c, cin, 1, 1, 1), "x_embedder.proj.bias": (c,),
        "plucker_embedder.proj.weight": (c, d["chunk_plucker_channels"], 1, 1, 1), "plucker_embedder.proj.bias": (c,),
        "raymap_embedder.proj.weight": (c, 3, 1, 1, 1), "raymap_embedder.proj.bias": (c,),
        "t_embedder.mlp.0.weight": (c, 256), "t_embedder.mlp.0.bias": (c,),
        "t_embedder.mlp.2.weight": (c, c), "t_embedder.mlp.2.bias": (c,),
        "t_block.1.weight": (6 * c, c), "t_block.1.bias": (6 * c,),
        "y_embedder.y_proj.fc1.weight": (c, cap), "y_embedder.y_proj.fc1.bias": (c,),
        "y_embedder.y_proj.fc2.weight": (c, c), "y_embedder.y_proj.fc2.bias": (c,),
        "attention_y_norm.weight": (c,),
        "final_layer.linear.weight": (cin, c), "final_layer.linear.bias": (cin,),
        "final_layer.scale_shift_table": (2, c),
    }
    for i in range(d["num_layers"]):
        softmax = (i + 1) % d["softmax_every_n"] == 0
        b = f"blocks.{i}."
        block = {
            "scale_shift_table": (6, c), "plucker_proj.weight": (c, c), "plucker_proj.bias": (c,),
            "attn.qkv.weight": (3 * c, c), "attn.proj.weight": (c, c), "attn.proj.bias": (c,),
            "attn.q_norm.weight": (c,), "attn.k_norm.weight": (c,),
            "attn.beta_proj.weight": (heads, c), "attn.beta_proj.bias": (heads,),
            "attn.gate_proj.weight": (heads, c), "attn.gate_proj.bias": (heads,),
            "attn.A_log": (heads,), "attn.dt_bias": (heads,), "attn.recall_gate": (1,),
            "attn.output_gate.weight": (c, c), "attn.output_gate.bias": (c,),
            "attn.q_norm_cam.weight": (c,), "attn.k_norm_cam.weight": (c,),
            "cross_attn.q_linear.weight": (c, c), "cross_attn.q_linear.bias": (c,),
            "cross_attn.kv_linear.weight": (2 * c, c), "cross_attn.kv_linear.bias": (2 * c,),
            "cross_attn.proj.weight": (c, c), "cross_attn.proj.bias": (c,),
            "cross_attn.q_norm.weight": (c,), "cross_attn.k_norm.weight": (c,),
            "mlp.inverted_conv.conv.weight": (2 * ffn, c, 1, 1), "mlp.inverted_conv.conv.bias": (2 * ffn,),
            "mlp.depth_conv.conv.weight": (2 * ffn, 1, 3, 3), "mlp.depth_conv.conv.bias": (2 * ffn,),
            "mlp.point_conv.conv.weight": (c, ffn, 1, 1), "mlp.t_conv.weight": (c, c, 3, 1),
        }
        for proj in ("q_proj_cam", "k_proj_cam", "v_proj_cam", "out_proj_cam"):
            block[f"attn.{proj}.weight"], block[f"attn.{proj}.bias"] = (c, c), (c,)
        if not softmax:  # softmax blocks have no short convolutions
            block["attn.conv_k.weight"] = block["attn.conv_k_cam.weight"] = (c, 1, 4)
        shapes.update({b + k: v for k, v in block.items()})
    return shapes


def test_original_dit_has_the_nvlabs_keys_and_shapes(tiny_models):
    sd = load_file(str(tiny_models / C.ORIGINAL_REPO_DIR / C.DIT_FILE))
    expected = expected_original_shapes()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected) - OPTIONAL)
    assert not missing and not unexpected, f"missing {missing}, unexpected {unexpected}"
    wrong = {k: (tuple(sd[k].shape), v) for k, v in expected.items() if tuple(sd[k].shape) != v}
    assert not wrong, wrong
    assert all(t.dtype == torch.float32 for t in sd.values()), "the release DiT is stored in fp32"
    if "y_embedder.y_embedding" in sd:
        assert tuple(sd["y_embedder.y_embedding"].shape) == (300, C.DIT_CONFIG["caption_channels"])
    if "pos_embed" in sd:  # config.yaml image_size / 32 squared tokens
        grid = C.TINY_HEIGHT // C.TINY_VAE_SPATIAL_STRIDE
        assert tuple(sd["pos_embed"].shape) == (1, grid * grid, C.DIT_CONFIG["hidden_size"])


def test_original_dit_holds_the_diffusers_transformer_weights(tiny_models):
    convert = pytest.importorskip("sana_wm_core.model.convert")
    diffusers_sd = load_file(str(tiny_models / C.DIFFUSERS_REPO_DIR / "transformer"
                                 / "diffusion_pytorch_model.safetensors"))
    original = load_file(str(tiny_models / C.ORIGINAL_REPO_DIR / C.DIT_FILE))
    converted = convert.diffusers_to_original(diffusers_sd)
    assert set(converted) == set(original)
    assert all(torch.equal(converted[k], original[k]) for k in original if k not in OPTIONAL)
    back = convert.original_to_diffusers(original)
    assert set(back) == set(diffusers_sd) and all(torch.equal(back[k], diffusers_sd[k]) for k in back)
    # The refilled zero-init branches really are non-zero in the file.
    assert original["plucker_embedder.proj.weight"].abs().sum() > 0
    assert original["blocks.0.attn.conv_k.weight"].abs().sum() > 0


def test_original_dit_file_runs_like_the_diffusers_transformer(tiny_models):
    """Our loader on the original-layout file and diffusers on the diffusers layout: same velocity."""
    model = pytest.importorskip("sana_wm_core.model")
    from diffusers import SanaWMTransformer3DModel

    net = model.load_transformer(tiny_models / C.ORIGINAL_REPO_DIR / C.DIT_FILE).eval()
    ref = SanaWMTransformer3DModel.from_pretrained(str(tiny_models / C.DIFFUSERS_REPO_DIR / "transformer")).eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, C.LATENT_CHANNELS, 2, 3, 4, generator=gen)
    t = torch.tensor([[[0.0, 500.0]]])
    text = torch.randn(1, 1, 8, C.DIT_CONFIG["caption_channels"], generator=gen)
    mask = torch.ones(1, 8)
    pose = torch.cat([torch.eye(4).flatten(), torch.tensor([3.0, 3.0, 2.0, 1.5])])
    cam = pose.expand(1, 2, 20).clone()
    plucker = torch.randn(1, 48, 2, 3, 4, generator=gen)
    with torch.no_grad():
        want = ref(x, t, text, mask=mask, camera_conditions=cam, chunk_plucker=plucker, return_dict=False,
                   data_info={"img_hw": torch.tensor([[C.TINY_HEIGHT, C.TINY_WIDTH]], dtype=torch.float)})[0]
        got = net(x, t, text, encoder_attention_mask=mask, camera_conditions=cam, chunk_plucker=plucker)
    got = got[0] if isinstance(got, (tuple, list)) else got
    assert got.shape == want.shape
    err = (got - want).abs().max().item()
    print(f"original-layout file via load_transformer vs diffusers layout: max abs diff {err:.2e}")
    assert err <= 1e-3 * max(1.0, want.abs().max().item()), f"max |diff| {err}"
