"""SANA-WM as a core MODEL: ComfyUI's own samplers reproduce the pack's sampler (and so diffusers' pipeline).

In-process against the real ComfyUI 0.3.75 sampling code (`comfy.sample`, `comfy.samplers`), CPU, fp32, the
tiny release checkpoints. SamplerCustom's path (`comfy.sample.sample_custom` with the `euler` sampler and the
release sigmas) must equal `sample_stage1` and diffusers' `SanaWMPipeline` (the oracle of
tests/test_pipeline_parity.py, run under PyTorch's defaults) within 1e-5 relative; KSampler's path with stock
schedulers runs and keeps the pinned first frame.
"""
from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import test_pipeline_parity as parity
from pack_import import COMFY, REPO, import_pack_module
from sana_wm_core.sampling import flow_schedule, sample_stage1
from test_pipeline_parity import oracle  # noqa: F401  (a fixture: SanaWMPipeline on the same tiny release)
from tiny_stage1 import tiny_release_stage1

STEPS, SEED, CFG = parity.STEPS, parity.SEED, 5.0


@pytest.fixture(scope="module")
def comfy_core():
    if not (COMFY / "comfy").is_dir():
        pytest.skip("ComfyUI runtime not installed (.venv/ComfyUI)")
    sys.path.insert(0, str(COMFY))
    # Other tests put scripts/ on sys.path and import scripts/comfy_api.py as `comfy_api`, which shadows
    # ComfyUI's `comfy_api` package: drop that module and those path entries so ComfyUI's package is found.
    for key in [k for k in sys.modules if k == "comfy_api" or k.startswith("comfy_api.")]:
        if not str(getattr(sys.modules[key], "__file__", "") or "").startswith(str(COMFY)):
            del sys.modules[key]
    saved_path = list(sys.path)
    sys.path[:] = [p for p in sys.path if Path(p).resolve() != (REPO / "scripts").resolve()]
    sys.path.insert(0, str(COMFY))
    import comfy.cli_args
    import comfy_api  # noqa: F401 - ComfyUI's (a namespace package: no __file__) under the name just freed

    # inspect.getmodule (torch.compile's tracing calls it) memoises each module's file by name: an entry left
    # from a module this process held under the same name would make it read a file-less package and raise
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) is None:
            inspect._filesbymodname.pop(name, None)  # noqa: SLF001 - test-only repair of the swap above

    comfy.cli_args.args.cpu = True
    import comfy.model_management as mm
    import comfy.sample
    import comfy.samplers

    yield types.SimpleNamespace(model=import_pack_module("native_model"), cond=import_pack_module("native_cond"),
                                nodes=import_pack_module("native"), sample=comfy.sample, samplers=comfy.samplers,
                                mm=mm)
    mm.unload_all_models()
    sys.path[:] = saved_path + [str(COMFY)]


@pytest.fixture(scope="module")
def stage1(tiny_models):
    base = tiny_release_stage1(tiny_models)
    ours = sample_stage1(base.dit, base.cond, steps=STEPS, guidance_scale=CFG, seed=SEED, flow_shift=base.shift)
    return types.SimpleNamespace(dit=base.dit, cond=base.cond, shift=base.shift, ours=ours)


def _core_inputs(comfy_core, stage1):
    cpu = torch.device("cpu")
    patcher = comfy_core.model.wrap_as_core_model(stage1.dit, stage1.shift, cpu, cpu)
    positive, negative, latent = comfy_core.cond.core_conditioning(stage1.cond)
    noise = comfy_core.sample.prepare_noise(latent["samples"], SEED)
    return patcher, positive, negative, latent, noise


def _sampler_custom(comfy_core, stage1, patcher=None) -> torch.Tensor:
    """What SamplerCustom runs: `euler` over the release sigmas, the pack's seed and cfg."""
    default, positive, negative, latent, noise = _core_inputs(comfy_core, stage1)
    sigmas = flow_schedule(STEPS, stage1.shift).sigmas
    return comfy_core.sample.sample_custom(patcher or default, noise, CFG, comfy_core.samplers.sampler_object("euler"),
                                           sigmas, positive, negative, latent["samples"],
                                           noise_mask=latent["noise_mask"], disable_pbar=True, seed=SEED)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _assert_first_frame_is_the_image(out: torch.Tensor, stage1) -> None:
    """ComfyUI's sampler state at a pinned frame walks from the noise to the clean latent (the model only ever
    sees the clean latent there), so the last Euler step lands on it up to float rounding, not bit for bit."""
    image = stage1.cond.image_latent.to(out.dtype)
    err = float((out[:, :, :1] - image).abs().max() / image.abs().max())
    assert err < 1e-6, f"pinned frame drifted from the image latent by {err:.2e} (relative)"


def test_sampler_custom_euler_with_release_sigmas_equals_pack_sampler(comfy_core, stage1):
    out, ours = _sampler_custom(comfy_core, stage1), stage1.ours
    rel = _rel(out, ours)
    print(f"\nSamplerCustom(euler, release sigmas) vs sample_stage1: max relative diff {rel:.2e}")
    assert out.shape == ours.shape
    assert rel < 1e-5                      # measured 2.77e-6
    _assert_first_frame_is_the_image(out, stage1)


def test_sampler_custom_euler_with_release_sigmas_equals_sana_wm_pipeline(comfy_core, stage1, oracle):
    """Core SamplerCustom on the SANA-WM MODEL against diffusers 0.42.1's SanaWMPipeline itself (same tiny
    weights, prompt, image, camera, seed and cfg), not by way of the pack's sampler."""
    ref = oracle[1].latent
    out = _sampler_custom(comfy_core, stage1)
    rel = _rel(out, ref)
    print(f"\nSamplerCustom(euler, release sigmas) vs SanaWMPipeline: max relative diff {rel:.2e}")
    assert out.shape == ref.shape
    assert rel < 1e-5                      # measured 3.8e-6


@pytest.mark.parametrize("scheduler", ["simple", "normal", "beta"])
def test_ksampler_with_stock_schedulers_runs_and_keeps_the_first_frame(comfy_core, stage1, scheduler):
    patcher, positive, negative, latent, noise = _core_inputs(comfy_core, stage1)
    out = comfy_core.sample.sample(patcher, noise, 3, CFG, "euler", scheduler, positive, negative,
                                   latent["samples"], denoise=1.0, noise_mask=latent["noise_mask"],
                                   disable_pbar=True, seed=SEED)
    assert out.shape == stage1.ours.shape and torch.isfinite(out).all()
    _assert_first_frame_is_the_image(out, stage1)
    assert not torch.equal(out[:, :, 1:], latent["samples"][:, :, 1:]), "nothing was denoised"


def test_a_frame_is_pinned_only_where_its_noise_mask_is_zero_everywhere(comfy_core, stage1):
    """process_timestep: a frame's timestep is t times its largest mask value over channels and pixels."""
    base = comfy_core.model.SanaWMBaseModel(stage1.dit, stage1.shift, device=torch.device("cpu"))
    mask = torch.ones(2, 4, 5, 3, 4)
    mask[0, :, 0] = 0.0                        # frame 0: kept everywhere -> pinned
    mask[0, :, 1, 0, 0] = 0.0                  # frame 1: kept at pixel [0, 0] only -> denoised
    mask[0, :, 2, 2, 3] = 0.0                  # frame 2: kept at its last pixel only -> denoised
    mask[0, :, 3] = 0.0
    mask[0, 2, 3, 1, 1] = 1.0                  # frame 3: one channel of one pixel denoised -> denoised
    mask[0, :, 4] = 0.5                        # frame 4: half strength everywhere -> half the timestep
    t = base.process_timestep(torch.tensor([800.0, 300.0]), denoise_mask=mask)
    assert torch.equal(t, torch.tensor([[[0.0, 800.0, 800.0, 800.0, 400.0]], [[300.0] * 5]]))
    assert torch.equal(base.process_timestep(torch.tensor([800.0, 300.0])), torch.tensor([800.0, 300.0]))
    with pytest.raises(ValueError, match="noise mask must be"):
        base.process_timestep(torch.tensor([800.0]), denoise_mask=torch.ones(1, 5, 3, 4))


def test_model_sampling_uses_the_release_shift(comfy_core, stage1):
    patcher = comfy_core.model.wrap_as_core_model(stage1.dit, stage1.shift, torch.device("cpu"), torch.device("cpu"))
    ms = patcher.get_model_object("model_sampling")
    assert ms.shift == pytest.approx(stage1.shift) and ms.multiplier == 1000
    assert float(ms.timestep(torch.tensor(0.5))) == 500.0


def test_scheduler_node_gives_the_release_sigmas_and_follows_model_sampling_sd3(comfy_core, stage1):
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    patcher = comfy_core.model.wrap_as_core_model(stage1.dit, stage1.shift, torch.device("cpu"), torch.device("cpu"))
    node = comfy_core.nodes.SanaWMScheduler
    sigmas = node.execute(patcher, 60, 0.0).result[0]
    assert torch.equal(sigmas, flow_schedule(60, stage1.shift).sigmas)
    assert torch.equal(node.execute(patcher, 8, 7.5).result[0], flow_schedule(8, 7.5).sigmas)
    shifted = ModelSamplingSD3().patch(patcher, 5.0)[0]
    assert torch.equal(node.execute(shifted, 8, 0.0).result[0], flow_schedule(8, 5.0).sigmas)


def test_pack_sampler_node_on_core_values_equals_sample_stage1_bit_for_bit(comfy_core, stage1):
    """SANA-WM Sampler takes the core MODEL + positive + negative + LATENT and runs the engine's registry
    sampler: the very latents `sample_stage1` gives (and so diffusers' SanaWMPipeline,
    tests/test_pipeline_parity.py), in a core LATENT that keeps the clip info and adds the settings."""
    sampling = import_pack_module("sampling")
    patcher, positive, negative, latent, _ = _core_inputs(comfy_core, stage1)
    out = sampling.SanaWMSampler.execute(patcher, positive, negative, latent, SEED, STEPS, CFG,
                                         "flow_euler_ltx", 0.0, 0.0).result[0]
    assert torch.equal(out["samples"], stage1.ours.cpu())
    assert torch.equal(out["noise_mask"], latent["noise_mask"])
    clip = out[comfy_core.cond.CLIP_KEY]
    assert clip["num_frames"] == 17 and clip["generation"]["seed"] == SEED and clip["generation"]["steps"] == STEPS
    assert clip["generation"]["flow_shift"] == pytest.approx(stage1.shift)
    assert comfy_core.cond.CLIP_KEY not in latent or "generation" not in latent[comfy_core.cond.CLIP_KEY]


def test_pack_sampler_node_refuses_values_not_from_image_to_video(comfy_core, stage1):
    sampling = import_pack_module("sampling")
    patcher, positive, negative, latent, _ = _core_inputs(comfy_core, stage1)
    bare = {"samples": latent["samples"]}                  # what LoadLatent gives back: no clip info
    with pytest.raises(ValueError, match="no SANA-WM clip info"):
        sampling.SanaWMSampler.execute(patcher, positive, negative, bare, SEED, 1, CFG, "flow_euler_ltx")
    with pytest.raises(ValueError, match="positive must be the single CONDITIONING entry"):
        sampling.SanaWMSampler.execute(patcher, positive + positive, negative, latent, SEED, 1, CFG,
                                       "flow_euler_ltx")
    with pytest.raises(ValueError, match="SANA-WM MODEL"):
        sampling.SanaWMSampler.execute(object(), positive, negative, latent, SEED, 1, CFG, "flow_euler_ltx")


def test_block_offload_core_model_samples_like_the_whole_model(comfy_core, stage1):
    """offload=block: the loader's MODEL is the block-streaming patcher over the same SanaWMBaseModel; the core
    sampler loads it through ComfyUI (the offloader is installed on the DiT) and gets the same latents."""
    glue = import_pack_module("comfy_model")
    cpu = torch.device("cpu")
    patcher = comfy_core.model.wrap_as_core_model(stage1.dit, stage1.shift, cpu, cpu, blocks_resident=1)
    assert isinstance(patcher, glue.BlockOffloadPatcher)
    assert isinstance(patcher.model, comfy_core.model.SanaWMBaseModel) and patcher.num_blocks == len(stage1.dit.blocks)
    out = _sampler_custom(comfy_core, stage1, patcher)
    assert stage1.dit.offloader is not None and stage1.dit.offloader.resident == 1
    rel = _rel(out, stage1.ours)
    assert rel < 1e-5, rel
    comfy_core.mm.unload_all_models()
    assert stage1.dit.offloader is None


def test_loader_model_records_how_to_build_a_classic_patcher_again(comfy_core, tiny_models, monkeypatch):
    """Like comfy/sd.py's loaders, the Model Loader's MODEL carries `cached_patcher_init`: called with
    disable_dynamic=True (current ComfyUI's `get_non_dynamic_delegate`, for conditioning hooks and
    TorchCompileModel) it rebuilds the same DiT behind a classic ModelPatcher, while the loader itself gives
    `CoreModelPatcher` (a stand-in for Dynamic VRAM's `ModelPatcherDynamic`; 0.3.75 has none)."""
    import comfy.model_patcher

    loader = import_pack_module("models")

    class StandInDynamic(comfy.model_patcher.ModelPatcher):
        pass

    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", StandInDynamic, raising=False)
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, "sana_wm", ([str(tiny_models / "sana_wm")], set()))
    repo = str(tiny_models / "sana_wm" / "SANA-WM_bidirectional")
    patcher = loader.load_stage1("SANA-WM_bidirectional", "fp32", "none", repo)
    assert type(patcher) is StandInDynamic
    factory, args = patcher.cached_patcher_init
    again = factory(*args, disable_dynamic=True)
    assert type(again) is comfy.model_patcher.ModelPatcher and again.model is not patcher.model
    assert isinstance(again.model, comfy_core.model.SanaWMBaseModel)
    assert again.model.flow_shift == patcher.model.flow_shift
    ours, theirs = patcher.model.dit.state_dict(), again.model.dit.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert type(factory(*args)) is StandInDynamic                  # a multi-GPU copy: the dynamic one again
    block = loader.load_stage1("SANA-WM_bidirectional", "fp32", "block", repo)
    assert type(block).__name__ == "BlockOffloadPatcher"


def test_core_latent2rgb_previewer_draws_the_pack_samplers_preview(comfy_core, stage1):
    """ComfyUI's own Latent2RGB previewer, built from the SANA-WM latent format as `latent_preview.get_previewer`
    builds it, draws the pack's preview of a latent (`latent_preview` with the clip's fitted map) once the
    conditioning has handed the map over (`extra_conds`, as the sampler does before its first step); before
    that it draws flat grey, never an error."""
    import latent_preview

    from sana_wm_core.sampling.preview import latent_preview as pack_preview

    patcher = comfy_core.model.wrap_as_core_model(stage1.dit, stage1.shift, torch.device("cpu"), torch.device("cpu"))
    fmt = patcher.model.latent_format
    x0 = stage1.ours
    previewer = latent_preview.Latent2RGBPreviewer(fmt.latent_rgb_factors, fmt.latent_rgb_factors_bias,
                                                   fmt.latent_rgb_factors_reshape)
    grey = np.asarray(previewer.decode_latent_to_preview(x0))
    assert grey.shape == (x0.shape[-2], x0.shape[-1], 3) and np.ptp(grey) == 0
    positive, _, latent = comfy_core.cond.core_conditioning(stage1.cond)
    patcher.model.extra_conds(**positive[0][1], noise=x0)
    core = np.asarray(previewer.decode_latent_to_preview(x0)).astype(int)
    ours = pack_preview(x0, stage1.cond.preview_proj).astype(int)
    assert core.shape == ours.shape and np.abs(core - ours).max() <= 1 and ours.std() > 1


def _loaded_dit(loader, tiny_models, monkeypatch, dtype: str, weight_format: str = "default"):
    import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, "sana_wm", ([str(tiny_models / "sana_wm")], set()))
    repo = str(tiny_models / "sana_wm" / "SANA-WM_bidirectional")
    return loader.load_stage1("SANA-WM_bidirectional", dtype, "none", repo, weight_format).model.dit


def test_the_model_loader_builds_the_dit_from_comfy_ops(comfy_core, tiny_models, monkeypatch):
    """The Stage-1 loader hands ComfyUI's operations to the engine: the DiT's layers are `comfy.ops` classes
    (what lets ComfyUI cast, patch and stream them per layer); fp8 storage gives `manual_cast` layers holding
    float8_e4m3fn block weights, upcast per call."""
    import comfy.ops

    loader = import_pack_module("models")
    dit = _loaded_dit(loader, tiny_models, monkeypatch, "fp32")
    qkv = dit.blocks[0].attn.qkv
    assert type(qkv) is comfy.ops.disable_weight_init.Linear, type(qkv)      # storage = compute: cast only if offloaded
    assert qkv.weight.dtype == torch.float32
    assert isinstance(dit.blocks[0].attn.q_norm, comfy.ops.CastWeightBiasOp)
    dit8 = _loaded_dit(loader, tiny_models, monkeypatch, "fp32", "fp8_e4m3fn")
    linears = [m for m in dit8.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, comfy.ops.manual_cast.Linear) for m in linears)
    assert all(m.weight.dtype == torch.float8_e4m3fn for m in linears), {m.weight.dtype for m in linears}
    assert dit8.blocks[0].attn.qkv.comfy_cast_weights                       # upcast to fp32 per call


@pytest.mark.parametrize("folder,node", [("CHUNK_CAUSAL_REPO_DIR", "the SANA-WM Sampler with sampler chunk_flow_euler"),
                                         ("STREAMING_REPO_DIR", "SANA-WM Stream Sampler or SANA-WM Stream to Video")])
def test_core_samplers_refuse_the_chunk_causal_and_streaming_releases(comfy_core, stage1, tiny_models, folder, node):
    """Their schedules are the pack's (staggered chunks / streamed blocks): SamplerCustom and KSampler refuse
    them at the model's first look at the conditioning, before any forward, naming the node that runs them."""
    from sana_wm_core.model import load_transformer, read_release
    from sana_wm_core.testing import tiny_config as C
    from sana_wm_core.weights.torch_pt import as_safetensors

    info = read_release(tiny_models / getattr(C, folder))
    dit = load_transformer(as_safetensors(info.dit_path), overrides=info.model_overrides)
    calls: list = []
    handle = dit.register_forward_hook(lambda *a: calls.append(1))
    cpu = torch.device("cpu")
    patcher = comfy_core.model.wrap_as_core_model(dit, info.flow_shift, cpu, cpu)
    positive, negative, latent = comfy_core.cond.core_conditioning(stage1.cond)
    noise = comfy_core.sample.prepare_noise(latent["samples"], SEED)
    try:
        with pytest.raises(ValueError, match=f"model: a core sampler .*, or run it in {node}"):
            comfy_core.sample.sample_custom(patcher, noise, CFG, comfy_core.samplers.sampler_object("euler"),
                                            flow_schedule(2, info.flow_shift).sigmas, positive, negative,
                                            latent["samples"], noise_mask=latent["noise_mask"], disable_pbar=True)
        with pytest.raises(ValueError, match=f"or run it in {node}"):
            comfy_core.sample.sample(patcher, noise, 2, CFG, "euler", "simple", positive, negative, latent["samples"],
                                     noise_mask=latent["noise_mask"], disable_pbar=True)
    finally:
        handle.remove()
        comfy_core.mm.unload_all_models()
    assert calls == []


def test_core_torch_compile_wrapper_traces_the_dit(comfy_core, stage1):
    """TorchCompileModel wraps the diffusion model in torch.compile (`set_torch_compile_wrapper`, on 0.3.75 and
    current ComfyUI). Tracing used to fail inside RoPE (complex views of `out=` tensors); `aot_eager` runs the
    same tracing and autograd-free graph as the node's `inductor` without a C compiler and minutes of codegen."""
    import torch._dynamo
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    cpu = torch.device("cpu")
    compiled = comfy_core.model.wrap_as_core_model(stage1.dit, stage1.shift, cpu, cpu).clone()
    set_torch_compile_wrapper(model=compiled, backend="aot_eager")
    try:
        out = _sampler_custom(comfy_core, stage1, patcher=compiled)
    finally:
        torch._dynamo.reset()
    rel = _rel(out, _sampler_custom(comfy_core, stage1))
    print(f"\nTorchCompileModel wrapper (aot_eager) vs eager SamplerCustom: max relative diff {rel:.2e}")
    assert rel < 1e-5
    _assert_first_frame_is_the_image(out, stage1)
