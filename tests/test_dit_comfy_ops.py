"""The DiT built from ComfyUI 0.3.75's own operations (comfy.ops), driven by its real model management (CPU).

- manual_cast with weights stored in bf16 or fp8 (e4m3fn) and fp32 compute: the classes upcast each layer's
  weight per call, and the output equals the plain fp32 model holding the same rounded weights;
- ModelPatcher's low-VRAM path (`load(..., lowvram_model_memory=small)`): layers left behind are switched to
  per-call casting (`comfy_cast_weights`), weight patches (LoRA-style diffs) on Linear and on conv-shaped
  weights reach the computation through the cast, and unpatching restores the model bit for bit;
- block offload (offload="block") still streams a DiT made of ComfyUI's classes.
"""
from __future__ import annotations

import pytest
import torch

from dit_oracle import inputs, make_pair, rel_diff, run_ours
from sana_wm_core.model import load_transformer
from sana_wm_core.model.ops import is_matmul_layer
from pack_import import import_pack_module
from test_dit_comfy import comfy_glue  # noqa: F401 - the shared ComfyUI fixture

CPU = torch.device("cpu")
TOL = 1e-5  # fp32: only the RMSNorm reduction order differs (ComfyUI's F.rms_norm vs the default class)


@pytest.fixture(scope="module")
def comfy(comfy_glue):  # noqa: F811
    import comfy.model_patcher
    import comfy.ops

    return comfy, import_pack_module("comfy_ops")


@pytest.fixture(scope="module")
def pair():
    ref, _ = make_pair(0)
    return ref, ref.state_dict(), inputs(ref.config, B=2, F=3)


def _block_matmul_keys(model) -> list:
    return [f"{n}.weight" for n, m in model.named_modules() if n.startswith("blocks.") and is_matmul_layer(m)]


def test_pick_operations_for_the_loader(comfy):
    c, ops = comfy
    assert ops.dit_operations(torch.bfloat16, False, CPU) is c.ops.disable_weight_init
    assert ops.dit_operations(torch.bfloat16, True, CPU) is c.ops.manual_cast       # no fp8 matmuls on a CPU
    assert ops.dit_operations(torch.float32, True, CPU) is c.ops.manual_cast
    assert ops.core_patcher_class() is c.model_patcher.ModelPatcher                  # 0.3.75: no Dynamic VRAM


def test_manual_cast_bf16_storage_fp32_compute(comfy, pair):
    c, _ = comfy
    ref, sd, kw = pair
    model = load_transformer(sd, ref.config, dtype="bf16", operations=c.ops.manual_cast)
    model.compute_dtype = torch.float32
    assert isinstance(model.blocks[0].attn.qkv, c.ops.manual_cast.Linear)
    assert isinstance(model.blocks[0].mlp.t_conv, c.ops.manual_cast.Conv2d)
    assert isinstance(model.blocks[0].attn.conv_k, c.ops.manual_cast.Conv1d)
    assert isinstance(model.x_embedder.proj, c.ops.manual_cast.Conv3d)
    assert isinstance(model.blocks[0].attn.q_norm, c.ops.manual_cast.RMSNorm)
    assert model.blocks[0].mlp.t_conv.weight.dtype == torch.bfloat16
    rounded = load_transformer({k: v.to(torch.bfloat16).float() for k, v in sd.items()}, ref.config)
    out = run_ours(model, kw)
    err = rel_diff(out, run_ours(rounded, kw))
    print(f"manual_cast, bf16 storage, fp32 compute vs fp32 with the same rounded weights: {err:.1e}")
    assert out.dtype == torch.float32 and err < TOL


def test_manual_cast_fp8_storage_fp32_compute(comfy, pair):
    c, ops = comfy
    ref, sd, kw = pair
    model = load_transformer(sd, ref.config, dtype="fp32", weight_format="fp8_e4m3fn",
                             operations=ops.dit_operations(torch.float32, True, CPU))
    keys = _block_matmul_keys(model)
    assert keys and all(model.get_parameter(k).dtype == torch.float8_e4m3fn for k in keys)
    assert model.x_embedder.proj.weight.dtype == torch.float32 and model.compute_dtype == torch.float32
    rounded = dict(sd)
    for k in keys:
        rounded[k] = sd[k].to(torch.float8_e4m3fn).float()
    err = rel_diff(run_ours(model, kw), run_ours(load_transformer(rounded, ref.config), kw))
    print(f"manual_cast, fp8 e4m3fn block weights, fp32 compute vs fp32 with the same rounded weights: {err:.1e}")
    assert err < TOL


@pytest.mark.parametrize("budget", ["nothing", "half"])
def test_lowvram_partial_load_casts_per_layer_and_applies_patches(comfy, pair, budget):
    """`ModelPatcher.load(lowvram_model_memory=...)` is how ComfyUI loads a model that does not fit: the layers
    it leaves on the offload device get `comfy_cast_weights` (cast on every call) and their weight patches
    run inside that cast. Diffs on a Linear and on two conv-shaped weights (the FFN's temporal and 1x1
    convs) must change the output exactly as patching the checkpoint would."""
    c, _ = comfy
    ref, sd, kw = pair
    model = load_transformer(sd, ref.config, operations=c.ops.disable_weight_init)
    base = run_ours(model, kw)
    patcher = c.model_patcher.ModelPatcher(model, load_device=CPU, offload_device=CPU)
    g = torch.Generator().manual_seed(5)
    diffs = {k: torch.randn(sd[k].shape, generator=g) * 0.05 for k in
             ("blocks.0.attn.qkv.weight", "blocks.1.mlp.t_conv.weight", "blocks.2.mlp.inverted_conv.conv.weight")}
    assert sorted(patcher.add_patches({k: (d,) for k, d in diffs.items()})) == sorted(diffs)
    memory = 1 if budget == "nothing" else patcher.model_size() // 2
    patcher.load(CPU, lowvram_model_memory=memory)
    assert model.model_lowvram
    cast = [n for n, m in model.named_modules() if getattr(m, "prev_comfy_cast_weights", None) is not None]
    assert cast and all(model.get_submodule(n).comfy_cast_weights for n in cast)
    if budget == "nothing":
        assert {"blocks.1.mlp.t_conv", "blocks.0.attn.qkv", "x_embedder.proj"} <= set(cast)
        assert len(model.blocks[1].mlp.t_conv.weight_function) == 1        # the diff, applied per call
        assert torch.equal(model.blocks[1].mlp.t_conv.weight, sd["blocks.1.mlp.t_conv.weight"])
    else:
        assert len(cast) < sum(1 for m in model.modules() if hasattr(m, "comfy_cast_weights"))
    patched = dict(sd)
    for k, d in diffs.items():
        patched[k] = sd[k] + d
    want = run_ours(load_transformer(patched, ref.config), kw)
    out = run_ours(model, kw)
    err = rel_diff(out, want)
    print(f"low VRAM ({budget} loaded): {len(cast)} layers cast per call, patched output vs patched "
          f"checkpoint {err:.1e}")
    assert err < TOL and rel_diff(out, base) > 1e-3
    patcher.unpatch_model(CPU)
    assert not any(getattr(m, "comfy_cast_weights", False) for m in model.modules())
    assert torch.equal(run_ours(model, kw), base)


def test_block_offload_streams_a_dit_of_comfy_operations(comfy, pair):
    c, _ = comfy
    ref, sd, kw = pair
    glue = import_pack_module("comfy_model")
    import comfy.model_management as mm

    model = load_transformer(sd, ref.config, operations=c.ops.disable_weight_init)
    base = run_ours(model, kw)
    patcher = glue.wrap_for_comfy(model, CPU, blocks_resident=1)
    mm.load_models_gpu([patcher])
    assert model.offloader is not None and model.offloader.resident == 1
    assert torch.equal(run_ours(model, kw), base)
    assert model.offloader.loads == len(model.blocks) - 1
    mm.unload_all_models()
    assert model.offloader is None
