"""sana_wm_core/runtime: the dtype vocabulary and its "auto" rule, the one fp8 format, the one block offloader,
and the kernel choice read once into an explicit setting."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dit_oracle import inputs, make_pair, rel_diff, run_ours
from sana_wm_core.model import load_transformer
from sana_wm_core.model.kernels import gdn
from sana_wm_core.model.layers import Linear
from sana_wm_core.runtime import (BlockOffloader, Fp8Linear, KernelSettings, Precision, auto_dtype, dequantize,
                                  parse_dtype, precision_problem, quantize_fp8)
from sana_wm_core.runtime.kernels import KERNEL_ENV, PRECISION_ENV

# ------------------------------------------------------------------ dtypes


def test_widget_values_current_and_legacy_map_to_one_precision():
    assert Precision.from_widgets("auto") == Precision("auto", "default")
    assert Precision.from_widgets("bf16", "fp8_e4m3fn").fp8
    # the refiner loader's older names, the DiT loader's older single fp8 choice (it computed in bf16)
    assert Precision.from_widgets("bfloat16", "default") == Precision("bf16", "default")
    assert Precision.from_widgets("float16") == Precision("fp16", "default")
    assert Precision.from_widgets("float32", "fp8_e4m3fn") == Precision("fp32", "fp8_e4m3fn")
    assert Precision.from_widgets("fp8_e4m3") == Precision("bf16", "fp8_e4m3fn")
    assert precision_problem("fp8_e4m3", "default") == "" and precision_problem("bfloat16") == ""
    assert "dtype 'bf32' is not one of auto, bf16, fp16, fp32" in precision_problem("bf32")
    assert "weight_format 'int8'" in precision_problem("auto", "int8")
    with pytest.raises(ValueError, match="dtype 'half'"):
        Precision.from_widgets("half")


def test_auto_rule_cpu_fp32_accelerator_bf16_unless_unsupported():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)      # device objects only: no GPU needed
    assert auto_dtype(cpu) == torch.float32 and auto_dtype(cpu, supports_bf16=True) == torch.float32
    assert auto_dtype(gpu, supports_bf16=True) == torch.bfloat16
    assert auto_dtype(gpu, supports_bf16=False) == torch.float16
    assert auto_dtype(gpu, supports_bf16=lambda d: d.index == 0) == torch.bfloat16     # ComfyUI's probe
    assert Precision("auto").compute_dtype(gpu, supports_bf16=False) == torch.float16
    assert Precision("fp32").compute_dtype(gpu, supports_bf16=True) == torch.float32


def test_parse_dtype_accepts_the_vocabulary_and_torch_names():
    assert parse_dtype(None) is None and parse_dtype(torch.float16) is torch.float16
    assert parse_dtype("bf16") is parse_dtype("bfloat16") is parse_dtype("torch.bfloat16") is torch.bfloat16
    assert parse_dtype("fp8") is parse_dtype("fp8_e4m3fn") is torch.float8_e4m3fn
    with pytest.raises(ValueError, match="not one of fp32, bf16, fp16, fp8"):
        parse_dtype("int4")


# ------------------------------------------------------------------ fp8


def test_one_fp8_format_for_the_dit_and_the_refiner():
    """The DiT's Linear and the refiner's Fp8Linear store the same codes and scales and compute the same
    output: one quantiser, one dequantiser. Rows keep their own scale; an all-zero row stays zero."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 10, generator=g) * torch.tensor([1e-4, 1e-2, 1.0, 10.0, 300.0, 0.0])[:, None]
    b = torch.randn(6, generator=g)
    q, scale = quantize_fp8(w)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (6, 1) and scale.dtype == torch.float32
    assert scale[5, 0] == 1.0 and torch.all(q[5].float() == 0)
    back = dequantize(q, scale, w)
    assert torch.all((back - w).abs() <= 16 * scale)        # e4m3: 3 mantissa bits, per-row range
    assert torch.all((back[:5] - w[:5]).abs().amax(1) / w[:5].abs().amax(1) < 0.07)

    dit = Linear(10, 6)
    dit.weight.data.copy_(w)
    dit.bias.data.copy_(b)
    dit.to_fp8_()
    ref = Fp8Linear(w, b, torch.float32)
    assert torch.equal(dit.weight.data.view(torch.uint8), ref.weight_fp8.view(torch.uint8))
    assert torch.equal(dit.weight_scale, ref.weight_scale)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(3, 10, generator=g).to(dtype)
        assert torch.equal(dit(x), ref(x))


def test_fp8_storage_with_an_explicit_compute_dtype(tmp_path):
    """weight_format fp8_e4m3fn keeps the compute dtype it is given (fp32 here: no bf16 rounding on CPU);
    the older dtype="fp8" still means bf16 + fp8 storage, bit for bit."""
    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    want = run_ours(model, kw)
    sd = model.state_dict()
    heads = {"num_attention_heads": model.config.num_attention_heads}     # not visible in a bare state dict
    fp32 = load_transformer(sd, dtype="fp32", weight_format="fp8_e4m3fn", overrides=heads)
    assert fp32.blocks[0].attn.qkv.weight.dtype == torch.float8_e4m3fn
    assert fp32.x_embedder.proj.weight.dtype == torch.float32 and fp32.compute_dtype == torch.float32
    out = run_ours(fp32, kw)
    assert out.dtype == torch.float32 and rel_diff(out, want) < 0.15
    old = run_ours(load_transformer(sd, dtype="fp8", overrides=heads), kw)
    new = run_ours(load_transformer(sd, dtype="bf16", weight_format="fp8_e4m3fn", overrides=heads), kw)
    assert old.dtype == torch.bfloat16 and torch.equal(old, new)
    with pytest.raises(ValueError, match="weight_format 'fp4'"):
        load_transformer(sd, weight_format="fp4")


# ------------------------------------------------------------------ block offload


def _blocks(n: int = 4) -> nn.ModuleList:
    torch.manual_seed(0)
    return nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.GELU()) for _ in range(n))


def test_block_offloader_hook_mode_streams_every_call_and_detaches():
    blocks = _blocks()
    x = torch.randn(2, 8)

    def run():
        h = x
        for b in blocks:
            h = b(h)
        return h

    base = run()
    off = BlockOffloader(blocks, "cpu", resident=1, hooks=True)
    assert sorted(off.cpu) == [1, 2, 3] and off.resident == 1
    assert torch.equal(run(), base) and off.loads == 3
    assert off.pending.keys() == {1}          # the next call's first streamed block is already on its way
    assert torch.equal(run(), base) and off.loads == 6
    for i in off.cpu:                          # between blocks every streamed weight is its host tensor again
        assert [t.data_ptr() for t in off.cpu[i]] == [p.data_ptr() for p in blocks[i].parameters()]
    off.remove()
    run()
    assert off.loads == 6 and not off.pending


def test_block_offloader_explicit_mode_and_meta_placeholders():
    """The mode a forward we own drives (the DiT): prepare + before/after; meta tensors are never touched."""
    blocks = _blocks(3)
    with torch.device("meta"):
        blocks[2].append(nn.Linear(8, 8))      # a never-loaded branch, like the refiner's audio layers
    off = BlockOffloader(blocks, "cpu", resident=0)
    assert len(off.cpu[2]) == 2 and blocks[2][2].weight.is_meta
    off.prepare()
    assert off.pending.keys() == {0}
    for i in range(3):
        off.before_block(i)
        off.after_block(i)
    assert off.loads == 3
    off.remove("cpu")
    assert blocks[2][2].weight.is_meta


# ------------------------------------------------------------------ kernel choice


def test_kernel_settings_come_from_the_environment_only_as_the_default():
    assert KernelSettings.from_env({}) == KernelSettings("auto", "ieee")
    assert KernelSettings.from_env({KERNEL_ENV: " Torch ", PRECISION_ENV: "tf32x3"}) == KernelSettings("torch", "tf32x3")
    with pytest.raises(ValueError, match=f"{KERNEL_ENV}='cuda'"):
        KernelSettings.from_env({KERNEL_ENV: "cuda"})
    with pytest.raises(ValueError, match=f"{PRECISION_ENV}='fp64'"):
        KernelSettings.from_env({PRECISION_ENV: "fp64"})
    with pytest.raises(ValueError, match="GDN kernel 'cuda'"):
        KernelSettings(gdn="cuda")
    assert KernelSettings.from_env({}).softmax_precision == "bf16"   # the reference's numerics by default
    with pytest.raises(ValueError, match="softmax precision 'fp16'"):
        KernelSettings(softmax_precision="fp16")


def test_softmax_precision_model_keeps_an_fp32_attention_in_fp32():
    from sana_wm_core.model.kernels import camera_softmax_attention, softmax_attention
    q, k, v = torch.randn(3, 1, 2, 6, 8, generator=torch.Generator().manual_seed(0)).unbind(0)
    fp32 = KernelSettings(softmax_precision="model")
    for attend in (softmax_attention, camera_softmax_attention):
        scale = None if attend is softmax_attention else 128 ** -0.5
        exact = torch.nn.functional.scaled_dot_product_attention(q.double(), k.double(), v.double(), scale=scale)
        assert float((attend(q, k, v, kernels=fp32).double() - exact).abs().max()) < 1e-6
        assert float((attend(q, k, v).double() - exact).abs().max()) > 1e-4       # default: rounded through bf16
        assert torch.equal(attend(q, k, v), attend(q, k, v, kernels=KernelSettings()))


def test_the_model_reads_the_kernel_choice_once_and_passes_it_to_the_kernel(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv(KERNEL_ENV, "torch")
    model, _ = make_pair(0)
    assert model.kernels == KernelSettings("torch", "ieee")
    kw = inputs(model.config, B=1, F=3)
    base = run_ours(model, kw)
    monkeypatch.setenv(KERNEL_ENV, "not-a-kernel")          # read at construction: later changes do not reach it
    assert torch.equal(run_ours(model, kw), base)
    model.kernels = KernelSettings(gdn="triton")            # the explicit setting is what the kernel obeys
    with pytest.raises(RuntimeError, match="triton needs CUDA"):
        run_ours(model, kw)
    with pytest.raises(ValueError, match=KERNEL_ENV):       # a bad default fails when a model is built
        make_pair(0)
    q = torch.rand(1, 1, 2, 3, 8)
    out = gdn.frame_gdn(q, q, q, torch.rand(1, 1, 2, 3), torch.rand(1, 1, 2), kernels=KernelSettings("torch"))
    assert out.shape == q.shape                              # explicit settings: the variable is not read
