"""The sections of `make gpu-check`, each run in its own subprocess by `gpu_check.py` (so each is time-boxed).

    python scripts/gpu_check_sections.py SECTION [--smoke]

Every finished check prints one `ROW {"check", "status", "figure"}` line at once, so a section that runs out
of time keeps the rows it finished. Status is ok / failed / skipped. `--smoke` runs the same code on the
CPU with tiny shapes (CI keeps the script working on machines without a GPU). Rows and shared helpers are in
`gpu_check_rows.py`; the streaming section is `gpu_check_streaming.py`. A new section is one
function here plus one entry in `SECTIONS` (and a time box in gpu_check.py's `BUDGETS`).
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from gpu_check_rows import GIB, bench_config, emit, guarded, peak, rel, reset_peak, sync  # noqa: E402
from gpu_check_streaming import section_streaming  # noqa: E402

LOW_VRAM_CAP_GIB = 24.0
GDN_TOL = {torch.float32: 1e-4, torch.bfloat16: 1e-3}  # max |triton - torch| / max |torch|
EXTRA_MODULES_ENV = "GPU_CHECK_EXTRA_MODULES"  # set by gpu_check.py
TARGET_ENV = "GPU_CHECK_TARGET"  # the temporary directory the missing wheels went into
FP8_TOL = 5e-2  # fp8 e4m3 per-row weights vs bf16, relative to the output scale
COMFYUI_ENV = "GPU_CHECK_COMFYUI"  # a ComfyUI folder for the low-VRAM comparison (default .venv/ComfyUI)


# --------------------------------------------------------------------------------------------- env
def section_env(smoke: bool, device: torch.device) -> None:
    import importlib.util

    from gpu_check_wheels import GPU_WHEELS

    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (smoke mode)"
    mem = f", {torch.cuda.get_device_properties(0).total_memory / GIB:.0f} GiB" if device.type == "cuda" else ""
    try:
        import triton
        tri = triton.__version__
    except Exception as exc:  # noqa: BLE001
        tri = f"unavailable ({type(exc).__name__})"
    emit("device", "ok", f"{name}{mem}; torch {torch.__version__}, CUDA {torch.version.cuda}, triton {tri}, "
         f"python {sys.version.split()[0]}")
    extra = [m for m in os.environ.get(EXTRA_MODULES_ENV, "").split(",") if m]  # e.g. a test's probe wheel
    target = os.environ.get(TARGET_ENV, "")
    local, present, absent = [], [], []
    for mod in list(GPU_WHEELS) + extra:
        spec = importlib.util.find_spec(mod)
        if spec is None or not spec.origin:
            absent.append(mod)
        elif target and Path(spec.origin).resolve().is_relative_to(Path(target).resolve()):
            local.append(mod)
        else:
            present.append(mod)
    figure = f"from the temporary target: {', '.join(local) or 'none'}; already installed: {len(present)}"
    if absent:
        figure += f"; NOT importable: {', '.join(absent)}"
    emit("wheels importable", "failed" if absent else "ok", figure)


# --------------------------------------------------------------------------------------------- CUDA tests
def _gdn_inputs(B, H, T, S, D, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = (D * S) ** -0.5
    q, qd = torch.rand(B, H, T, S, D, generator=g), torch.rand(B, H, T, S, D, generator=g)
    k, kd = torch.rand(B, H, T, S, D, generator=g) * scale, torch.rand(B, H, T, S, D, generator=g) * scale
    v = torch.randn(B, H, T, S, D, generator=g)
    beta = torch.rand(B, T, S, H, generator=g).permute(0, 3, 1, 2)  # non-contiguous, as the model builds it
    decay = 0.5 + 0.5 * torch.rand(B, H, T, generator=g)
    return [t.to(device, dtype) for t in (q, k, v, beta)] + [decay.to(device)], (qd.to(device, dtype),
                                                                                 kd.to(device, dtype))


def _gdn_check(dtype, smoke: bool, device: torch.device):
    from sana_wm_core.model.kernels.gdn import frame_gdn
    from sana_wm_core.model.kernels.gdn_triton import frame_gdn_triton

    B, H, T, S, D = (1, 1, 3, 7, 32) if smoke else (2, 4, 8, 880, 112)
    (q, k, v, beta, decay), (qd, kd) = _gdn_inputs(B, H, T, S, D, dtype, device)
    cpu = [t.cpu() for t in (q, k, v, beta, decay)]
    only_fwd = list(range(T))  # every frame its own chunk: the reverse state restarts everywhere
    errs = {}
    for name, kw_t, kw_c in (("bidir+den", dict(q_den=qd, k_den=kd), dict(q_den=qd.cpu(), k_den=kd.cpu())),
                             ("bidir", {}, {}), ("forward", dict(chunk_id=only_fwd), dict(chunk_id=only_fwd))):
        errs[name] = (frame_gdn_triton(q, k, v, beta, decay, **kw_t), frame_gdn(*cpu, **kw_c))
    # the reverse direction alone: bidirectional minus forward-only, for both implementations
    errs["reverse"] = (errs["bidir"][0] - errs["forward"][0], errs["bidir"][1] - errs["forward"][1])
    figs = {n: rel(a, b) for n, (a, b) in errs.items()}
    tol = GDN_TOL[dtype]
    ok = all(e <= tol for e in figs.values()) and all(bool(torch.isfinite(a).all()) for a, _ in errs.values())
    shape = f"B{B} H{H} T{T} S{S} D{D}"
    detail = ", ".join(f"{n} {e:.1e}" for n, e in figs.items())
    return "ok" if ok else "failed", f"max rel err vs torch scan (tol {tol:.0e}, {shape}): {detail}"


def _dit_pair(smoke: bool):
    from dit_oracle import make_pair

    if smoke:
        return make_pair(0)
    return make_pair(0, in_channels=32, num_layers=4, hidden_size=448, num_attention_heads=4, linear_head_dim=112,
                     caption_channels=256, chunk_plucker_post_attn_blocks=4)


def _dit_shape(smoke: bool) -> dict:
    """The DiT checks' input sizes (dit_oracle.inputs): batch, latent frames, latent h x w, prompt tokens."""
    return dict(B=2, F=3, h=4, w=6, L=12) if smoke else dict(B=2, F=6, h=22, w=40, L=64)


def _cast_inputs(kw: dict, device, dtype) -> dict:
    out = {}
    for k, v in kw.items():
        keep = k in ("timestep", "encoder_attention_mask")
        out[k] = v.to(device) if keep else v.to(device, dtype)
    return out


def _dit_bf16_check(smoke: bool, device: torch.device):
    """ours in bf16 must be no further from diffusers-fp32 than diffusers-bf16 is (both on this device).

    diffusers refuses bf16 on the CPU (its ray grid), so smoke mode compares fp32 with fp32 instead."""
    import copy

    from dit_oracle import inputs

    ours, ref = _dit_pair(smoke)
    low = torch.float32 if device.type == "cpu" else torch.bfloat16
    kw = inputs(ours.config, **_dit_shape(smoke))
    with torch.no_grad():
        ref32 = ref.to(device)(**_cast_inputs(kw, device, torch.float32), return_dict=False)[0]
        ref16 = copy.deepcopy(ref).to(device, low)(**_cast_inputs(kw, device, low), return_dict=False)[0]
        ours16 = ours.to(device, low)(**_cast_inputs(kw, device, low))
    e_ours, e_ref, e_pair = rel(ours16, ref32), rel(ref16, ref32), rel(ours16, ref16)
    ok = math.isfinite(e_ours) and e_ours <= 1.5 * e_ref + (1e-4 if low == torch.float32 else 1e-3)
    name = str(low)[6:]
    return ("ok" if ok else "failed", f"vs diffusers fp32: ours {name} {e_ours:.1e}, diffusers {name} {e_ref:.1e}; "
            f"ours vs diffusers (both {name}) {e_pair:.1e}" + (" (cpu: fp32, no bf16 in diffusers)" if
                                                               device.type == "cpu" else ""))


def _sdpa_flag_check(smoke: bool, device: torch.device):
    """Our DiT's numbers on this device with ComfyUI's process-wide half-precision math-SDPA reduction allowed
    and with PyTorch's default: the same bits when every attention call gets a fused kernel, not the math one
    (tested on the CPU in test_dit_parity; this is the CUDA answer, in bf16 there)."""
    from dit_oracle import flag_on_and_off, inputs

    ours, _ = _dit_pair(smoke)
    low = torch.float32 if device.type == "cpu" else torch.bfloat16
    ours = ours.to(device, low)
    kw = _cast_inputs(inputs(ours.config, **_dit_shape(smoke)), device, low)
    outs = flag_on_and_off(lambda: ours(**kw))
    same = torch.equal(*outs)
    return ("ok" if same else "failed", f"{str(low)[6:]}: bits {'identical' if same else 'differ'} (max rel "
            f"{rel(*outs):.1e}) with allow_fp16_bf16_reduction_math_sdp on / off")


def _tiny_refiner_run(net, device, dtype, frames=7):
    from sana_wm_core.refiner.loop import RefineSettings, refine_latents

    g = torch.Generator().manual_seed(0)
    cfg = net.config
    lat = torch.randn(1, cfg.in_channels, frames, 6, 8, generator=g)
    ctx = torch.randn(1, 32, cfg.caption_channels, generator=g).to(device, dtype)
    mask = torch.ones(1, 32, dtype=torch.int64, device=device)
    with torch.no_grad():
        return refine_latents(net.to(device, dtype), lat.to(device), ctx, mask, fps=16,
                              generator=torch.Generator().manual_seed(42), dtype=dtype, settings=RefineSettings())


def _refiner_chunk_check(smoke: bool, device: torch.device):
    """The tiny refiner over a few chunks on this device vs the same network in fp32 on the CPU."""
    import copy

    from sana_wm_core.testing.tiny_refiner import tiny_components

    net = tiny_components()["transformer"]
    want = _tiny_refiner_run(copy.deepcopy(net), torch.device("cpu"), torch.float32)
    got32 = _tiny_refiner_run(copy.deepcopy(net), device, torch.float32)
    got16 = _tiny_refiner_run(copy.deepcopy(net), device, torch.bfloat16)
    e32, e16 = rel(got32, want), rel(got16, want)
    ok = e32 <= 1e-3 and e16 <= 1e-1 and math.isfinite(e16)
    return ("ok" if ok else "failed", f"{device.type} vs cpu fp32: fp32 {e32:.1e} (tol 1e-3), bf16 {e16:.1e} "
            "(tol 1e-1)")


def _fp8_check(smoke: bool, device: torch.device):
    """Stage-1 DiT with fp8 e4m3 block weights vs the same model in bf16."""
    import copy

    from dit_oracle import inputs
    from sana_wm_core.model.loading import quantize_model_fp8_

    ours, _ = _dit_pair(smoke)
    shape = dict(B=2, F=3, h=4, w=6, L=12) if smoke else dict(B=2, F=6, h=22, w=40, L=64)
    kw = _cast_inputs(inputs(ours.config, **shape), device, torch.bfloat16)
    bf16 = ours.to(device, torch.bfloat16)
    fp8 = quantize_model_fp8_(copy.deepcopy(bf16))
    size = lambda m: sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers()))  # noqa: E731
    with torch.no_grad():
        e = rel(fp8(**kw), bf16(**kw))
    ok = math.isfinite(e) and e <= FP8_TOL
    return ("ok" if ok else "failed", f"rel diff vs bf16 {e:.1e} (tol {FP8_TOL:.0e}); weights {size(fp8) / 2**20:.1f} "
            f"MiB vs {size(bf16) / 2**20:.1f} MiB")


def section_cuda(smoke: bool, device: torch.device) -> None:
    for dtype in (torch.float32, torch.bfloat16):
        guarded(f"GDN Triton vs PyTorch scan, {str(dtype)[6:]}", lambda: _gdn_check(dtype, smoke, device))
    guarded("DiT bf16 vs diffusers bf16", lambda: _dit_bf16_check(smoke, device))
    guarded("DiT ignores ComfyUI's math-SDPA flag", lambda: _sdpa_flag_check(smoke, device))
    guarded("refiner chunks", lambda: _refiner_chunk_check(smoke, device))
    guarded("fp8 weights (Stage-1 DiT)", lambda: _fp8_check(smoke, device))


# --------------------------------------------------------------------------------------------- benchmarks
def section_bench(frames: int, smoke: bool, device: torch.device) -> None:
    """benchmarks/bench_dit_gpu.py's model, inputs and timing at one video length: ours, then diffusers."""
    from bench_dit_gpu import PEAK_TFLOPS, build, make_inputs, measure
    from dit_flops import forward_flops

    cfg, dtype, (h, w) = bench_config(smoke, device)
    nf = 17 if smoke else frames
    lf = (nf - 1) // 8 + 1
    repeats = 1 if (smoke or lf > 60) else 2
    state = {}

    def ours_row():
        state["ours"], state["ref"] = build(cfg, device, dtype, with_ref=True)
        state["kw"] = make_inputs(cfg, lf, h, w, device, dtype)
        reset_peak(device)
        s, _ = measure(lambda: state["ours"](**state["kw"]), repeats, device)
        state["s"] = s
        floor = forward_flops(cfg, 2, lf, h, w)["total"] / (PEAK_TFLOPS * 1e12)
        return "ok", f"{s:.3f} s/forward, {peak(device)}, {s / floor:.2f}x the FLOP floor ({floor:.3g} s)"

    def ref_row():
        if "s" not in state:
            return "skipped", "ours did not run"
        try:
            reset_peak(device)
            s, _ = measure(lambda: state["ref"](**state["kw"], return_dict=False)[0], repeats, device)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return "ok", "diffusers: out of memory (expected at 961 frames: math-kernel camera SDPA)"
        return "ok", f"diffusers {s:.3f} s/forward, {peak(device)}; ours/diffusers {state['s'] / s:.2f}"

    guarded(f"bench_dit_gpu {nf} frames: ours", ours_row)
    guarded(f"bench_dit_gpu {nf} frames: diffusers", ref_row)


def _comfy_modules(device: torch.device):
    """ComfyUI's model management for the low-VRAM comparison: (comfy package, "") or (None, why not).

    Looked for in $GPU_CHECK_COMFYUI, else .venv/ComfyUI (carry that folder, ~30 MB, to a GPU machine)."""
    path = Path(os.environ.get(COMFYUI_ENV) or ROOT / ".venv" / "ComfyUI")
    if not (path / "comfy" / "ops.py").is_file():
        return None, f"ComfyUI not found at {path} (carry .venv/ComfyUI or set {COMFYUI_ENV})"
    sys.path.insert(0, str(path))
    try:
        import comfy.cli_args

        if device.type != "cuda":
            comfy.cli_args.args.cpu = True
        import comfy.model_management  # noqa: F401
        import comfy.model_patcher  # noqa: F401
        import comfy.ops  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a missing dependency of ComfyUI is a skipped row, not a failure
        return None, f"ComfyUI at {path} not importable: {type(exc).__name__}: {str(exc)[:120]}"
    return comfy, ""


def section_lowvram(smoke: bool, device: torch.device) -> None:
    """Stage 1 at 961 frames under a 24 GiB cap: the pack's offload=block, then ComfyUI's own low-VRAM path
    (the DiT built from comfy.ops, `ModelPatcher.load(lowvram_model_memory=...)` with the same device weight
    budget: layers that do not fit are cast to the GPU per call), and which of the two is faster."""
    from bench_dit_gpu import make_inputs
    from sana_wm_core.model import SanaWMTransformer, enable_block_offload, load_transformer
    from sana_wm_core.model.offload import DEFAULT_BLOCKS_RESIDENT

    cfg, dtype, (h, w) = bench_config(smoke, device)
    nf = 17 if smoke else 961
    lf = (nf - 1) // 8 + 1
    state: dict = {}
    cap = "no cap on CPU"
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, LOW_VRAM_CAP_GIB * GIB / total), device)
        cap = f"cap {LOW_VRAM_CAP_GIB:.0f} GiB"

    def timed(model, kw) -> list:
        times = []
        with torch.no_grad():
            for _ in range(2):  # the first call warms up (kernel compiles, pinned buffers)
                sync(device)
                t0 = time.perf_counter()
                out = model(**kw)
                sync(device)
                times.append(time.perf_counter() - t0)
        state.setdefault("out", out.float().cpu())
        state["last"] = out.float().cpu()
        return times

    def run():
        with torch.device(device):
            model = SanaWMTransformer(cfg).to(dtype).eval()
        # the pack's offload="block" setting; the tiny smoke model streams half its blocks instead
        resident = min(DEFAULT_BLOCKS_RESIDENT, cfg.num_layers // 2) if smoke else DEFAULT_BLOCKS_RESIDENT
        off = enable_block_offload(model, device, blocks_resident=resident)
        block_bytes = max(sum(t.numel() * t.element_size() for t in host) for host in off.cpu.values())
        base_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values()) - \
            block_bytes * cfg.num_layers
        state["budget"] = base_bytes + (resident + 2) * block_bytes  # non-block + resident + two in flight
        state["kw"] = kw = make_inputs(cfg, lf, h, w, device, dtype)
        reset_peak(device)
        try:
            times = timed(model, kw)
        except torch.cuda.OutOfMemoryError as exc:
            return "failed", f"does not fit ({cap}, {resident} blocks resident): {str(exc)[:100]}"
        state["sd"] = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
        state["block"] = times[-1]
        return "ok", (f"fits ({cap}, {resident} of {cfg.num_layers} blocks resident): "
                      f"{times[-1]:.2f} s/step (one CFG-batch-2 forward), {peak(device)}")

    def run_comfy():
        if "sd" not in state:
            return "skipped", "needs the offload=block run's weights"
        comfy, why = _comfy_modules(device)
        if comfy is None:
            return "skipped", why
        gc.collect()  # the offload=block model and its streams go before this one is placed
        reset_peak(device)
        ops = comfy.ops.pick_operations(dtype, dtype, load_device=device)
        model = load_transformer(state.pop("sd"), cfg, dtype=dtype, device="cpu", operations=ops).eval()
        patcher = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=torch.device("cpu"))
        patcher.load(device, lowvram_model_memory=state["budget"])
        cast = sum(1 for m in model.modules() if getattr(m, "prev_comfy_cast_weights", None) is not None)
        layers = sum(1 for m in model.modules() if hasattr(m, "comfy_cast_weights"))
        block_out = state["out"]
        try:
            times = timed(model, state["kw"])
        except torch.cuda.OutOfMemoryError as exc:
            return "failed", f"does not fit ({cap}): {str(exc)[:100]}"
        finally:
            patcher.unpatch_model(torch.device("cpu"))
        state["comfy"] = times[-1]
        return "ok", (f"fits ({cap}, {state['budget'] / GIB:.2f} GiB of weights on the device, {cast} of {layers} "
                      f"layers cast per call): {times[-1]:.2f} s/step, {peak(device)}; "
                      f"vs offload=block max rel diff {rel(state['last'], block_out):.1e}")

    def verdict():
        if "block" not in state or "comfy" not in state:
            return "skipped", "needs both low-VRAM runs"
        b, c = state["block"], state["comfy"]
        winner = "offload=block" if b < c else "ComfyUI low VRAM"
        return "ok", (f"{winner} wins: block {b:.2f} s/step vs ComfyUI {c:.2f} s/step "
                      f"({max(b, c) / max(min(b, c), 1e-9):.2f}x) at the same device weight budget; "
                      f"keep offload=block: {'yes' if b < c else 'no'}")

    guarded(f"Stage 1 {nf} frames, low VRAM (offload=block)", run)
    guarded(f"Stage 1 {nf} frames, low VRAM (ComfyUI lowvram, comfy.ops)", run_comfy)
    guarded("offload=block vs ComfyUI low VRAM", verdict)


def section_refiner(smoke: bool, device: torch.device) -> None:
    """The LTX-2 refiner's time per chunk and peak at full width with random weights."""
    from sana_wm_core.refiner.loop import RefineSettings, refine_latents

    def run():
        from diffusers import SanaWMLTX2RefinerTransformer3DModel

        from bench_refiner import FULL_CONFIG

        dtype = torch.float32 if smoke else torch.bfloat16
        if smoke:
            from sana_wm_core.testing.tiny_refiner import tiny_components
            net, layers, full, (ch, cdim, clen, h, w, frames) = (tiny_components()["transformer"], None, None,
                                                                  (16, 0, 32, 6, 8, 10))
            cdim = net.config.caption_channels
        else:
            full = FULL_CONFIG["num_layers"]
            per_layer = 0.55e9 * 2  # ~0.55 B video parameters per block, bf16
            free = torch.cuda.mem_get_info(device)[0]
            layers = max(1, min(full, int((0.7 * free - 4 * GIB) // per_layer)))
            previous = torch.get_default_dtype()
            torch.set_default_dtype(dtype)  # built on the GPU directly in bf16: seconds, not minutes on a CPU
            try:
                with torch.device(device):
                    net = SanaWMLTX2RefinerTransformer3DModel(**{**FULL_CONFIG, "num_layers": layers})
            finally:
                torch.set_default_dtype(previous)
            ch, cdim, clen, h, w, frames = 128, FULL_CONFIG["caption_channels"], 1024, 22, 40, 10
        net = net.to(device, dtype).eval().requires_grad_(False)
        g = torch.Generator().manual_seed(0)
        lat = torch.randn(1, ch, frames, h, w, generator=g).to(device)
        ctx = torch.randn(1, clen, cdim, generator=g).to(device, dtype)
        mask = torch.ones(1, clen, dtype=torch.int64, device=device)
        reset_peak(device)
        stamps = [time.perf_counter()]

        def on_chunk(done, total):
            sync(device)
            stamps.append(time.perf_counter())

        with torch.no_grad():
            refine_latents(net, lat, ctx, mask, fps=16, generator=torch.Generator().manual_seed(42), dtype=dtype,
                           settings=RefineSettings(), on_chunk=on_chunk)
        per_chunk = [b - a for a, b in zip(stamps, stamps[1:])][1:] or [stamps[-1] - stamps[0]]  # first: sink
        s = statistics.median(per_chunk)
        if smoke:
            return "ok", f"tiny refiner on cpu: {s:.3f} s/chunk ({len(per_chunk) + 1} chunks)"
        scale = full / layers
        note = "full 48 layers" if layers == full else (f"{layers} of {full} layers built (memory), time scaled "
                                                        f"x{scale:.1f}: {s:.2f} s measured")
        return "ok", (f"{s * scale:.2f} s/chunk ({22 * 40 * 3} tokens active, {h}x{w}), {peak(device)} "
                      f"({note}), random bf16 weights")

    guarded("refiner s/chunk at full width", run)


SECTIONS = {
    "env": section_env,
    "cuda": section_cuda,
    "bench161": lambda smoke, dev: section_bench(161, smoke, dev),
    "bench961": lambda smoke, dev: section_bench(961, smoke, dev),
    "lowvram": section_lowvram,
    "refiner": section_refiner,
    "streaming": section_streaming,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=list(SECTIONS))
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    device = torch.device("cpu" if args.smoke else "cuda")
    if not args.smoke and not torch.cuda.is_available():
        emit(args.section, "failed", "no CUDA device (run with --smoke on a CPU)")
        return 0
    SECTIONS[args.section](args.smoke, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
