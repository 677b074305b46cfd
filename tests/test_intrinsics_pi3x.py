"""The native Pi3X: official key names, strict loading, the tiny checkpoint end to end, weights lookup offline."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from sana_wm_core.pi3x import (HUB_CHOICE, MethodUnavailable, Pi3XConfig, estimate_intrinsics, expected_shapes,
                               load_pi3x, pi3x_input_size, pi3x_intrinsics, resolve_checkpoint)
from sana_wm_core.pi3x.config import METADATA_KEY
from sana_wm_core.pi3x.network import MULTIMODAL_PREFIXES
from sana_wm_core.testing.tiny_pi3x import SLOPE_GAIN, build_tiny_pi3x


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return build_tiny_pi3x(tmp_path_factory.mktemp("models"))


def _tensors(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def _image(seed: int, size=(160, 90)) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3)).astype(np.uint8))


def test_official_key_names_and_shapes():
    shapes = expected_shapes(Pi3XConfig())
    assert len(shapes) == 1873  # the released Pi3X module tree, multimodal branches included
    facts = {
        "encoder.pos_embed": (1, 1370, 1024), "encoder.register_tokens": (1, 4, 1024),
        "encoder.patch_embed.proj.weight": (1024, 3, 14, 14), "encoder.blocks.23.ls2.gamma": (1024,),
        "decoder.35.attn.q_norm.weight": (64,), "register_token": (1, 1, 5, 1024),
        "point_decoder.projects.weight": (1024, 2048), "point_head.upsample_blocks.0.0.0.weight": (1026, 256, 2, 2),
        "point_head.upsample_blocks.2.2.layers.5.weight": (64, 128, 3, 3),
        "point_head.output_block.0.2.weight": (2, 32, 1, 1), "point_head.output_block.1.2.weight": (1, 32, 1, 1),
        "metric_token": (1, 1, 2048), "metric_decoder.blocks.4.cross_attn.k_proj.weight": (512, 512),
        "metric_head.weight": (1, 512), "camera_head.fc_rot.weight": (9, 512), "conf_head.output_block.0.2.bias": (1,),
        "depth_encoder.patch_embed.proj.weight": (1024, 2, 14, 14), "ray_embed.proj.weight": (1024, 2, 14, 14),
        "pose_inject_blk.4.ls1.gamma": (1024,), "depth_emb": (1, 1, 1024), "image_mean": (1, 3, 1, 1),
    }
    for key, shape in facts.items():
        assert shapes[key] == shape, key
    assert "encoder.mask_token" not in shapes and "depth_encoder.mask_token" not in shapes


def test_tiny_checkpoint_has_official_key_names(tiny_ckpt):
    tensors, meta = _tensors(tiny_ckpt)
    tiny = Pi3XConfig.from_json(meta[METADATA_KEY])
    assert tiny == Pi3XConfig.tiny()
    assert {k: tuple(v.shape) for k, v in tensors.items()} == expected_shapes(tiny)
    def pattern(keys):  # block indices differ with depth; every name pattern is the released file's
        return {re.sub(r"\.\d+\.", ".#.", k) for k in keys}
    assert pattern(tensors) == pattern(expected_shapes(Pi3XConfig()))


def test_tiny_pi3x_runs_end_to_end_on_cpu(tiny_ckpt):
    net = load_pi3x(tiny_ckpt)
    assert not hasattr(net, "camera_decoder") and not hasattr(net, "depth_encoder")  # unused branches not loaded
    x = torch.rand(1, 2, 3, 42, 70, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x)
        again = net(x)
        other = net(torch.rand(1, 2, 3, 42, 70, generator=torch.Generator().manual_seed(1)))
    pts = out["local_points"]
    assert pts.shape == (1, 2, 42, 70, 3) and pts.dtype == torch.float32
    assert torch.isfinite(pts).all() and (pts[..., 2] > 0).all()
    assert torch.equal(pts, again["local_points"])
    assert (pts - other["local_points"]).abs().max() > 1e-6  # the image reaches the output through the trunk
    torch.testing.assert_close(pts, torch.cat((out["xy"] * out["z"], out["z"]), -1) * out["metric"].view(1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="multiple of 14"):
        net(torch.rand(1, 1, 3, 40, 70))


def test_pi3x_estimate_matches_the_wired_pinhole(tiny_ckpt, tmp_path):
    """Silencing the tiny head's random part leaves rays = SLOPE_GAIN * uv: a pinhole whose K is known."""
    tensors, meta = _tensors(tiny_ckpt)
    w_last = tensors["point_head.output_block.0.2.weight"].clone()
    w_last[:, 4:] = 0
    tensors["point_head.output_block.0.2.weight"] = w_last
    conv = tensors["point_head.output_block.0.0.weight"].clone()
    conv[:4, :-2] = 0
    tensors["point_head.output_block.0.0.weight"] = conv
    path = tmp_path / "pinhole.safetensors"
    save_file(tensors, str(path), metadata=meta)
    img = _image(3, (320, 180))
    vals = pi3x_intrinsics(img, load_pi3x(path))
    wm, hm = pi3x_input_size(320, 180)
    aspect = wm / hm
    diag = math.sqrt(1 + aspect ** 2)
    fx_model = wm / (2 * SLOPE_GAIN * aspect / diag)
    fy_model = hm / (2 * SLOPE_GAIN / diag)
    expected = [fx_model * 320 / wm, fy_model * 180 / hm, (wm - 1) / 2 * 320 / wm, (hm - 1) / 2 * 180 / hm]
    np.testing.assert_allclose(vals, expected, rtol=1e-5)


def test_estimate_with_tiny_pi3x(tiny_ckpt):
    est = estimate_intrinsics(_image(1), "pi3x", checkpoint=lambda: tiny_ckpt, fallback=False)
    assert est.source == "pi3x" and est.notes == ()
    assert 25 < est.fov_y_deg < est.fov_x_deg < 120
    assert est.intrinsics.image_size == (160, 90)
    assert est.values[2] == pytest.approx(335.5 * 160 / 672)  # principal point: model-grid centre, scaled back


def test_implausible_pi3x_estimate_is_refused_or_falls_back(tiny_ckpt, tmp_path):
    tensors, meta = _tensors(tiny_ckpt)
    tensors["point_head.output_block.0.2.weight"] = tensors["point_head.output_block.0.2.weight"] * 20
    wide = tmp_path / "wide.safetensors"
    save_file(tensors, str(wide), metadata=meta)
    with pytest.raises(MethodUnavailable, match=r"outside \(25, 120\) deg"):
        estimate_intrinsics(_image(2), "pi3x", checkpoint=lambda: wide, fallback=False)
    est = estimate_intrinsics(_image(2), "pi3x", checkpoint=lambda: wide, fov_deg=65.0, fallback=True)
    assert est.source == "fov" and "pi3x skipped" in est.notes[0]


def test_strict_loading_lists_missing_unexpected_and_misshaped(tiny_ckpt, tmp_path):
    tensors, meta = _tensors(tiny_ckpt)
    del tensors["decoder.1.attn.qkv.weight"]
    del tensors["conf_head.output_block.0.2.bias"]
    tensors["decoder.1.attn.extra"] = torch.zeros(3)
    tensors["metric_head.weight"] = torch.zeros(2, 16)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(ValueError) as err:
        load_pi3x(bad)
    msg = str(err.value)
    assert "2 missing keys [conf_head.output_block.0.2.bias, decoder.1.attn.qkv.weight]" in msg
    assert "1 unexpected keys [decoder.1.attn.extra]" in msg
    assert "metric_head.weight (2, 16) (expected (1, 16))" in msg and str(bad) in msg


def test_checkpoint_without_multimodal_branch_or_constants_loads(tiny_ckpt, tmp_path):
    tensors, meta = _tensors(tiny_ckpt)
    slim = {k: v for k, v in tensors.items() if not k.startswith(MULTIMODAL_PREFIXES) and k not in ("image_mean", "image_std")}
    path = tmp_path / "slim.safetensors"
    save_file(slim, str(path), metadata=meta)
    x = torch.rand(1, 1, 3, 28, 42)
    with torch.no_grad():
        torch.testing.assert_close(load_pi3x(path)(x)["local_points"], load_pi3x(tiny_ckpt)(x)["local_points"])
    partial = dict(slim, **{"depth_emb": tensors["depth_emb"]})  # half a multimodal branch is an error
    save_file(partial, str(tmp_path / "partial.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="missing keys"):
        load_pi3x(tmp_path / "partial.safetensors")


def test_missing_checkpoint_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    models = tmp_path / "models" / "pi3x"
    models.mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as err:
        resolve_checkpoint(HUB_CHOICE, [models], download_dir=models)
    msg = str(err.value)
    assert str(models) in msg and "HF_HUB_OFFLINE" in msg and "models/pi3x/" in msg
    assert "yyfz233/Pi3X" in msg and "method 'exif' or 'fov'" in msg
    with pytest.raises(FileNotFoundError, match="nothere.safetensors"):
        resolve_checkpoint("nothere.safetensors", [models])
    with pytest.raises(FileNotFoundError, match="weights not found"):
        estimate_intrinsics(_image(0), "pi3x", checkpoint=lambda: resolve_checkpoint(HUB_CHOICE, [models], models),
                            fallback=False)
    est = estimate_intrinsics(_image(0), "pi3x", fov_deg=60.0, fallback=True,
                              checkpoint=lambda: resolve_checkpoint(HUB_CHOICE, [models], models))
    assert est.source == "fov" and "weights not found" in est.notes[0]


def test_resolve_finds_local_and_previously_downloaded_files(tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tiny_ckpt.parent
    assert resolve_checkpoint(tiny_ckpt.name, [tmp_path, folder]) == folder / tiny_ckpt.name
    assert resolve_checkpoint(str(tiny_ckpt), []) == tiny_ckpt
    hub_copy = tmp_path / "Pi3X" / "model.safetensors"
    hub_copy.parent.mkdir()
    hub_copy.write_bytes(tiny_ckpt.read_bytes())
    assert resolve_checkpoint(HUB_CHOICE, [tmp_path], download_dir=tmp_path) == hub_copy
