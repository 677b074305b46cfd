"""Decode and Refine nodes on a full core LATENT (samples + noise_mask + the pack's clip info), in-process.

The LATENT is the one `core_conditioning` builds with its samples replaced by the Stage-1 result, which is what
core KSampler / SamplerCustom return (a copy of the input dict). Server runs of the stripped and refined cases:
tests/test_native_latent_server.py.
"""
from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import torch

import test_sampling_support as tiny
from pack_import import PACK, import_pack_module
from test_native_model import comfy_core, stage1  # noqa: F401 - fixtures

CLIP_KEY = "sanawm_clip"


def _engine(name: str):
    return importlib.import_module(f"{PACK}.sana_wm_core.{name}")


@pytest.fixture(scope="module")
def pack(comfy_core):
    return type("Pack", (), {"output": import_pack_module("output"), "refine": import_pack_module("refine"),
                             "latent": import_pack_module("native_latent")})


@pytest.fixture(scope="module")
def full(comfy_core, stage1) -> dict:
    _, _, latent = comfy_core.cond.core_conditioning(stage1.cond)
    assert set(latent) == {"samples", "noise_mask", CLIP_KEY}
    return {**latent, "samples": stage1.ours.float()}


def test_a_core_latent_reads_as_the_clip_it_carries_and_without_its_key(pack, full, stage1):
    lat = pack.latent.engine_latent(full)
    assert lat.num_frames == 17 and lat.output_frames == 17 and lat.fps == 16.0 and lat.prompt == tiny.PROMPT
    assert np.array_equal(lat.c2w, stage1.cond.c2w) and lat.camera is stage1.cond.camera
    assert lat.samples is full["samples"] and not lat.refined
    bare = pack.latent.engine_latent({"samples": full["samples"]})            # core Load Latent keeps only this
    assert bare.num_frames == 17 and bare.fps == 0.0 and bare.c2w is None and bare.camera is None
    assert bare.prompt == ""
    with pytest.raises(ValueError, match="no frame rate.*'camera'.*'fps'"):
        bare.require_fps()
    cam = stage1.cond.camera                        # as the pack's own engine copy (imported under PACK) types it
    cam = _engine("camera.types").CameraPath(**{f.name: getattr(cam, f.name) for f in dataclasses.fields(cam)})
    framed = bare.with_clip_inputs(cam)                                        # the camera fills fps and poses
    assert framed.fps == 16.0 and np.array_equal(framed.c2w, stage1.cond.c2w)
    assert bare.with_clip_inputs(fps=12.0).fps == 12.0 and lat.with_clip_inputs(fps=24.0).fps == 24.0
    with pytest.raises(ValueError, match="Latent From Batch"):
        pack.latent.engine_latent({"samples": full["samples"].repeat(2, 1, 1, 1, 1)})
    with pytest.raises(ValueError, match="video latent"):
        pack.latent.engine_latent({"samples": full["samples"][:, :, 0]})
    back = pack.latent.core_latent(lat, like={**full, "batch_index": [0]})
    assert "noise_mask" not in back and back["batch_index"] == [0] and back["samples"] is full["samples"]
    assert back[CLIP_KEY]["prompt"] == tiny.PROMPT and back[CLIP_KEY]["drop_first_frames"] == 0


def test_decode_node_ignores_the_noise_mask_and_needs_no_clip_info(pack, full, tiny_models):
    vae = _engine("vae").LTX2Vae.from_folder(tiny_models / "sana_wm" / "SANA-WM_bidirectional",
                                             dtype=torch.float32, device="cpu")
    node = pack.output.SanaWMDecode
    images = node.execute(vae, full, 321).result[0]
    bare = node.execute(vae, {"samples": full["samples"]}, 321).result[0]
    assert images.shape == (17, 96, 128, 3) and torch.equal(images, bare)
    with pytest.raises(ValueError, match="SanaWMSaveVideo"):
        node.execute(vae, full, 16)


def test_refine_node_on_a_full_core_latent(pack, full, tiny_models):
    """Empty prompt: the Stage-1 prompt the latent carries is what the refiner encodes (the same result as
    refining the tensor with that prompt at the latent's fps); a filled prompt overrides it."""
    refine = _engine("refiner")
    refiner = refine.SanaWMRefiner(refine.locate_refiner("SANA-WM_bidirectional", [tiny_models / "sana_wm"]), "cpu",
                                   refine.RefinerOptions(dtype=torch.float32, keep_loaded=True))
    node = pack.refine.SanaWMRefine
    out = node.execute(refiner, full, "", 42).result[0]
    assert isinstance(out, dict) and "noise_mask" not in out
    assert out[CLIP_KEY]["drop_first_frames"] == 1 and out[CLIP_KEY]["prompt"] == tiny.PROMPT
    assert out[CLIP_KEY]["generation"]["refine_seed"] == 42 and out[CLIP_KEY]["fps"] == 16.0
    carried = refiner.refine(full["samples"], tiny.PROMPT, seed=42, fps=16.0)
    assert torch.equal(out["samples"], carried)
    other = node.execute(refiner, full, "A snowy forest at dawn.", 42).result[0]["samples"]
    assert torch.equal(other, refiner.refine(full["samples"], "A snowy forest at dawn.", seed=42, fps=16.0))
    assert (other - carried).abs().max().item() > 0
    assert pack.latent.engine_latent(out).output_frames == 16                # the sink frame is dropped
    with pytest.raises(ValueError, match="already refined"):
        node.execute(refiner, out, "", 1)
    refiner.free()
