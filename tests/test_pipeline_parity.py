"""End-to-end Stage-1 parity: our engine (native DiT, our text/VAE/camera/sampler) vs diffusers' SanaWMPipeline.

Both load the same tiny checkpoints written by `sana_wm_core.testing.tiny.build_all`: diffusers from the
diffusers layout, we from the original layout (NVlabs key names, config.yaml) and the Gemma-2 folder.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import test_sampling_support as tiny
from dit_oracle import reference_defaults
from sana_wm_core.camera import CameraPath, Intrinsics, action_string_to_c2w
from sana_wm_core.model import read_release
from sana_wm_core.sampling import build_stage1_conditioning, sample_stage1
from sana_wm_core.text import GemmaPromptEncoder
from sana_wm_core.vae import LTX2Vae, decode_chunks, decode_to_images

ACTION = "w-8,jw-4,iw-4"
SEED = 0
STEPS = 4


@pytest.fixture(scope="module")
def ours(tiny_models):
    from sana_wm_core.model import load_transformer

    repo = tiny_models / "sana_wm" / "SANA-WM_bidirectional"
    rel = read_release(repo)
    return dict(release=rel, dit=load_transformer(rel.dit_path, dtype="fp32", device="cpu"),
                text=GemmaPromptEncoder.from_folder(tiny_models / "text_encoders" / "gemma-2-2b-it",
                                                    dtype=torch.float32, device="cpu", chi_prompt=rel.chi_prompt),
                vae=LTX2Vae.from_folder(repo, dtype=torch.float32, device="cpu"))


@pytest.fixture(scope="module")
def oracle(tiny_models):
    """diffusers' SanaWMPipeline on the tiny release, under PyTorch's default attention settings
    (`dit_oracle.reference_defaults`): (pipeline, its output)."""
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import SanaWMPipeline

    pipe = SanaWMPipeline.from_pretrained(str(tiny_models / "sana_wm" / "SANA-WM_bidirectional-diffusers"))
    pipe.set_progress_bar_config(disable=True)
    with reference_defaults():
        out = pipe(image=tiny.image(), prompt=tiny.PROMPT, action=ACTION, intrinsics=tiny.INTRINSICS, height=96,
                   width=128, num_frames=17, num_inference_steps=STEPS, guidance_scale=5.0,
                   generator=torch.Generator().manual_seed(SEED), output_type="np")
    return pipe, out


def _camera() -> CameraPath:
    return CameraPath(c2w=action_string_to_c2w(ACTION), fps=16.0, source=f"action:{ACTION}", action=ACTION,
                      intrinsics=Intrinsics(values=np.array([tiny.INTRINSICS]), image_size=(200, 120)),
                      mapping="classic")


def test_release_settings(ours, oracle):
    rel = ours["release"]
    assert rel.layout == "original" and rel.flow_shift == oracle[0].scheduler.config.shift == 3.0


def test_stage1_latents_and_frames_match_pipeline(ours, oracle):
    pipe, out = oracle
    import time

    t0 = time.perf_counter()
    cond = build_stage1_conditioning(tiny.image(), _camera(), ours["text"], ours["vae"], tiny.PROMPT,
                                     num_frames=17, height=96, width=128)
    lat = sample_stage1(ours["dit"], cond, steps=STEPS, guidance_scale=5.0, seed=SEED,
                        flow_shift=ours["release"].flow_shift)
    t1 = time.perf_counter()
    ref = out.latent
    diff = float((lat - ref).abs().max())
    rel = diff / float(ref.abs().max())
    print(f"\nstage-1 latents: max abs diff {diff:.2e} (relative {rel:.2e}); ours {t1 - t0:.2f}s incl. encode")
    assert lat.shape == ref.shape == (1, 16, 3, 3, 4)
    assert rel < 1e-5                     # measured 3.95e-6 (CPU, fp32)
    assert torch.equal(lat[:, :, :1], cond.image_latent)
    np.testing.assert_allclose(cond.c2w, out.c2w, atol=1e-6)

    frames = decode_to_images(ours["vae"], lat).numpy()
    fdiff = float(np.abs(frames - out.frames).max())
    print(f"decoded frames: max abs diff {fdiff:.2e} (range [0,1])")
    assert frames.shape == out.frames.shape == (17, 96, 128, 3)
    assert fdiff < 1e-3
    # the same frames decoded from the pipeline's own latent are bit-identical
    same = decode_to_images(ours["vae"], ref).numpy()
    assert np.array_equal(same, out.frames)
    assert sum(c.shape[2] for c in decode_chunks(ours["vae"], lat)) == 17


def test_snapped_and_short_frame_counts(ours):
    cam = _camera()                                      # 17 poses
    c = build_stage1_conditioning(tiny.image(), cam, ours["text"], ours["vae"], "a road", num_frames=12,
                                  height=96, width=128)
    assert c.num_frames == 9 and c.latent_frames == 2   # 12 -> nearest 8k+1 (tie rule), within the path
    c = build_stage1_conditioning(tiny.image(), cam, ours["text"], ours["vae"], "a road", num_frames=161,
                                  height=96, width=128)
    assert c.num_frames == 17                            # never longer than the camera path


def test_bad_inputs_fail_before_heavy_work(ours):
    class Boom:
        def on_device(self):
            raise AssertionError("text encoder must not run for a bad input")

    cam = _camera()
    with pytest.raises(ValueError, match="image is missing"):
        build_stage1_conditioning(None, cam, Boom(), ours["vae"], "a road")
    with pytest.raises(ValueError, match="prompt is empty"):
        build_stage1_conditioning(tiny.image(), cam, Boom(), ours["vae"], "  ")
    with pytest.raises(ValueError, match="multiples of 32"):
        build_stage1_conditioning(tiny.image(), cam, Boom(), ours["vae"], "a road", height=100, width=128)
    with pytest.raises(ValueError, match="SANAWM_CAMERA"):
        build_stage1_conditioning(tiny.image(), np.eye(4)[None], Boom(), ours["vae"], "a road")
    no_intr = CameraPath(c2w=cam.c2w, action=ACTION)
    with pytest.raises(ValueError, match="intrinsics"):
        build_stage1_conditioning(tiny.image(), no_intr, Boom(), ours["vae"], "a road", height=96, width=128)


def test_missing_weights_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="dit/sana_wm_1600m_720p.safetensors"):
        read_release(tmp_path)
