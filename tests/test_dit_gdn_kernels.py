"""The Triton frame-wise GDN kernel against the PyTorch `frame_gdn`, and the kernel dispatch.

There is no GPU here: the kernel runs under Triton's interpreter (TRITON_INTERPRET=1, numpy on CPU
tensors). That variable must be set before triton is imported, so the kernel checks run in a fresh
subprocess that reports max differences as JSON.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sana_wm_core.model.kernels.gdn as gdn

ROOT = Path(__file__).resolve().parents[1]

# (B, H, T, S, D, Dv, chunk_id, dtype): tokens per frame not a power of two, head dims 32/48/112
CASES = [
    (2, 2, 5, 24, 48, 48, None, "float32"),
    (1, 2, 7, 71, 32, 32, None, "float32"),  # several token blocks per frame in every kernel
    (1, 2, 6, 10, 32, 48, [0, 1, 1, 2, 2, 2], "float32"),
    (2, 1, 4, 33, 48, 48, None, "bfloat16"),
    (1, 1, 3, 5, 112, 112, [0, 0, 1], "float32"),
]

# (B, H, T, S, D, Dv, chunk_id, dtype, cut): the state is carried across frame `cut` (a chunk start)
CARRY_CASES = [
    (1, 2, 6, 10, 32, 48, [0, 1, 1, 2, 2, 2], "float32", 3),
    (2, 1, 4, 5, 16, 16, [0, 0, 1, 1], "bfloat16", 2),
]

SCRIPT = r'''
import json, os, sys, time
os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, sys.argv[1])
import torch
from sana_wm_core.model.kernels import gdn
from sana_wm_core.model.kernels.gdn_triton import frame_gdn_triton

cases = json.loads(sys.argv[2])
report = []
for i, (B, H, T, S, D, Dv, cid, dt) in enumerate(cases):
    g = torch.Generator().manual_seed(i)
    dtype = getattr(torch, dt)
    scale = (D * S) ** -0.5
    q = torch.rand(B, H, T, S, D, generator=g).to(dtype)
    k = (torch.rand(B, H, T, S, D, generator=g) * scale).to(dtype)
    v = torch.randn(B, H, T, S, Dv, generator=g).to(dtype)
    qd = torch.rand(B, H, T, S, D, generator=g).to(dtype)
    kd = (torch.rand(B, H, T, S, D, generator=g) * scale).to(dtype)
    # beta as the model builds it: a permuted (non-contiguous) view; decays anywhere in (0, 1)
    beta = torch.rand(B, T, S, H, generator=g).to(dtype).permute(0, 3, 1, 2)
    decay = torch.rand(B, T, H, generator=g).transpose(1, 2)
    row = {"case": i}
    for name, kw in (("num", {}), ("den", {"q_den": qd, "k_den": kd})):
        os.environ["SANA_WM_GDN_KERNEL"] = "torch"
        ref = gdn.frame_gdn(q, k, v, beta, decay, chunk_id=cid, **kw)
        t0 = time.perf_counter()
        direct = frame_gdn_triton(q, k, v, beta, decay, chunk_id=cid, **kw)
        row[name + "_s"] = time.perf_counter() - t0
        os.environ["SANA_WM_GDN_KERNEL"] = "triton"
        routed = gdn.frame_gdn(q, k, v, beta, decay, chunk_id=cid, **kw)
        row[name] = (direct - ref).abs().max().item()
        row[name + "_scale"] = ref.abs().max().item()
        row[name + "_routed"] = (routed - direct).abs().max().item()
        row[name + "_shape_ok"] = tuple(direct.shape) == tuple(ref.shape) and direct.dtype == torch.float32
    report.append(row)

# state in / state out: two windows split at a chunk start, the state carried, against the torch scan doing
# the same (small shapes: the interpreter is slow)
carry = []
for i, (B, H, T, S, D, Dv, cid, dt, cut) in enumerate(json.loads(sys.argv[3])):
    g = torch.Generator().manual_seed(100 + i)
    dtype = getattr(torch, dt)
    scale = (D * S) ** -0.5
    q, qd = torch.rand(B, H, T, S, D, generator=g).to(dtype), torch.rand(B, H, T, S, D, generator=g).to(dtype)
    k = (torch.rand(B, H, T, S, D, generator=g) * scale).to(dtype)
    kd = (torch.rand(B, H, T, S, D, generator=g) * scale).to(dtype)
    v = torch.randn(B, H, T, S, Dv, generator=g).to(dtype)
    beta = torch.rand(B, H, T, S, generator=g).to(dtype)
    decay = torch.rand(B, H, T, generator=g)
    row = {"case": i}
    for name, kw in (("num", {}), ("den", {"q_den": qd, "k_den": kd})):
        res = {}
        for impl, fn in (("torch", gdn._frame_gdn_torch), ("triton", frame_gdn_triton)):
            outs, states, st = [], [], None
            for lo, hi in ((0, cut), (cut, T)):
                sl = slice(lo, hi)
                out, st = fn(q[:, :, sl], k[:, :, sl], v[:, :, sl], beta[:, :, sl], decay[:, :, sl],
                             chunk_id=None if cid is None else cid[sl], initial_state=st, output_final_state=True,
                             **{n: t[:, :, sl] for n, t in kw.items()})
                outs.append(out)
                states.append(st)
            res[impl] = (torch.cat(outs, 2), states)
        row[name] = (res["triton"][0] - res["torch"][0]).abs().max().item()
        row[name + "_scale"] = res["torch"][0].abs().max().item()
        row[name + "_state"] = max((getattr(a, f) - getattr(b, f)).abs().max().item()
                                   for a, b in zip(res["triton"][1], res["torch"][1]) for f in ("num", "den")
                                   if getattr(b, f) is not None)
        row[name + "_has_den"] = all(st.den is not None for st in res["triton"][1])
    carry.append(row)
print("CARRY" + json.dumps(carry))

# the first-use self-check: the real kernel passes; a kernel that is slightly wrong (1% off) is refused
import logging, types
from sana_wm_core.model.kernels import gdn_triton
logging.basicConfig(level=logging.WARNING)
q, v = torch.zeros(1, 1, 1, 1, 112), torch.zeros(1, 1, 1, 1, 112)
good = [gdn.triton_self_check(gdn_triton, q, v, norm, "ieee") for norm in (False, True)]
wrong = types.SimpleNamespace(frame_gdn_triton=lambda *a, **kw: gdn_triton.frame_gdn_triton(*a, **kw) * 1.01)
q48 = torch.zeros(1, 1, 1, 1, 48)  # other head dims: a fresh cache entry for the wrong kernel
bad = [gdn.triton_self_check(wrong, q48, q48, norm, "ieee") for norm in (False, True)]
print("SELFCHECK" + json.dumps({"good": good, "bad": bad}))
print("REPORT" + json.dumps(report))
'''


@pytest.fixture(scope="module")
def interpreter_report(tmp_path_factory) -> list:
    script = tmp_path_factory.mktemp("gdn") / "check.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("SANA_WM_GDN_KERNEL", "SANA_WM_GDN_PRECISION")}
    proc = subprocess.run([sys.executable, str(script), str(ROOT), json.dumps(CASES), json.dumps(CARRY_CASES)],
                          capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")][-1]
    check = [ln for ln in proc.stdout.splitlines() if ln.startswith("SELFCHECK")][-1]
    carry = [ln for ln in proc.stdout.splitlines() if ln.startswith("CARRY")][-1]
    return {"cases": json.loads(line[len("REPORT"):]), "self_check": json.loads(check[len("SELFCHECK"):]),
            "carry": json.loads(carry[len("CARRY"):]),
            "log": proc.stderr}


def test_first_use_self_check_accepts_the_kernel_and_refuses_a_wrong_one(interpreter_report):
    assert interpreter_report["self_check"] == {"good": [True, True], "bad": [False, False]}
    assert interpreter_report["log"].count("self-check failed") == 2


@pytest.mark.parametrize("case", range(len(CASES)))
def test_triton_kernel_matches_torch_under_interpreter(interpreter_report, case):
    """Numerator-only (camera branch) and normalised (main branch) outputs, both scan directions, chunk
    resets, bf16 inputs and padded head dims: the kernel equals frame_gdn to fp32 rounding."""
    row = interpreter_report["cases"][case]
    for name in ("num", "den"):
        assert row[name + "_shape_ok"]
        assert row[name + "_scale"] > 0.1  # the comparison is not between two near-zero tensors
        assert row[name] < 1e-4, (CASES[case], name, row)
        assert row[name + "_routed"] == 0.0  # frame_gdn with SANA_WM_GDN_KERNEL=triton runs this kernel


@pytest.mark.parametrize("case", range(len(CARRY_CASES)))
def test_triton_kernel_carries_state_like_torch_under_interpreter(interpreter_report, case):
    """initial_state / output_final_state: two windows with the forward state carried between them give the
    PyTorch scan's outputs and final states (numerator and normaliser)."""
    row = interpreter_report["carry"][case]
    for name in ("num", "den"):
        assert row[name + "_scale"] > 0.1
        assert row[name] < 1e-4, (CARRY_CASES[case], name, row)
        assert row[name + "_state"] < 1e-4, (CARRY_CASES[case], name, row)
        assert row[name + "_has_den"] == (name == "den")


def _inputs(seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    B, H, T, S, D = 1, 2, 4, 6, 16
    q = torch.rand(B, H, T, S, D, generator=g).to(dtype)
    k = (torch.rand(B, H, T, S, D, generator=g) * (D * S) ** -0.5).to(dtype)
    v = torch.randn(B, H, T, S, D, generator=g).to(dtype)
    beta = torch.rand(B, H, T, S, generator=g)
    decay = torch.rand(B, H, T, generator=g)
    return q, k, v, beta, decay


def test_cpu_default_and_forced_torch_are_the_torch_path(monkeypatch):
    """Unset or 'torch': the PyTorch scan, bit-identical, and triton is never loaded for CPU tensors."""
    monkeypatch.setattr(gdn, "_triton_state", {})
    monkeypatch.delenv(gdn.KERNEL_ENV, raising=False)
    q, k, v, beta, decay = _inputs()
    auto = gdn.frame_gdn(q, k, v, beta, decay, q_den=q, k_den=k)
    monkeypatch.setenv(gdn.KERNEL_ENV, "torch")
    forced = gdn.frame_gdn(q, k, v, beta, decay, q_den=q, k_den=k)
    assert torch.equal(auto, forced)
    assert gdn._triton_state == {}


def test_forced_triton_without_cuda_raises(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv(gdn.KERNEL_ENV, "triton")
    with pytest.raises(RuntimeError, match="SANA_WM_GDN_KERNEL=triton needs CUDA"):
        gdn.frame_gdn(*_inputs())


def test_bad_switch_values_are_named(monkeypatch):
    monkeypatch.setenv(gdn.KERNEL_ENV, "cuda")
    with pytest.raises(ValueError, match="SANA_WM_GDN_KERNEL"):
        gdn.frame_gdn(*_inputs())


def test_missing_triton_logs_once_and_forced_use_explains(monkeypatch, caplog):
    """A kernel module that cannot import: one warning, then None; forcing it names the cause."""
    monkeypatch.setattr(gdn, "_triton_state", {})
    monkeypatch.setitem(sys.modules, "sana_wm_core.model.kernels.gdn_triton", None)  # import -> ImportError
    with caplog.at_level(logging.WARNING, logger="sana_wm"):
        assert gdn._triton_module() is None
        assert gdn._triton_module() is None
    assert sum("Triton kernel unavailable" in r.getMessage() for r in caplog.records) == 1
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv(gdn.KERNEL_ENV, "triton")
    with pytest.raises(RuntimeError, match="cannot load"):
        gdn.frame_gdn(*_inputs())


AOT_SCRIPT = r'''
import json, os, re, subprocess, sys
sys.path.insert(0, sys.argv[1])
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from sana_wm_core.model.kernels import gdn_triton as g

T, S, D = 121, 880, 112  # the released model at 60 s
dxp = g._pow2(D)
P = "*fp32"
cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
jobs = [
    (g._transition_kernel, ["*bf16", "*bf16", "*bf16", P, P] + ["i32"] * 16,
     dict(T=T, S=S, DXP=dxp, BN=g.transition_bn(dxp), BS=g.TOKEN_BLOCK, HAS_VEC=True), 3),
    (g._scan_kernel, [P, P, P, "*i32", P, P] + ["i32"] * 6,
     dict(T=T, DXP=dxp, BV=g.scan_bv(D), KC=g.SCAN_KC, HAS_INIT=False), 1),
    (g._scan_kernel, [P, P, P, "*i32", P, P] + ["i32"] * 6,
     dict(T=T, DXP=dxp, BV=g.scan_bv(1), KC=g.SCAN_KC, HAS_INIT=False), 1),
    # with a carried state (chunk-causal / streaming windows)
    (g._scan_kernel, [P, P, P, "*i32", P, P] + ["i32"] * 6,
     dict(T=T, DXP=dxp, BV=g.scan_bv(D), KC=g.SCAN_KC, HAS_INIT=True), 1),
    (g._scan_kernel, [P, P, P, "*i32", P, P] + ["i32"] * 6,
     dict(T=T, DXP=dxp, BV=g.scan_bv(1), KC=g.SCAN_KC, HAS_INIT=True), 1),
    (g._output_kernel, ["*bf16", P, "*bf16", P, P, "fp32"] + ["i32"] * 12,
     dict(T=T, S=S, DXP=dxp, BS=g.TOKEN_BLOCK, BV=g.output_bv(D), HAS_DEN=True), 3),
]
report = []
for precision in sys.argv[2].split(","):
    for fn, types, consts, stages in jobs:
        consts = dict(consts, PRECISION=precision)
        sig = dict(zip(fn.arg_names, types + ["constexpr"] * len(consts)))
        k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", 90, 32),
                           options={"num_warps": g.warps(dxp), "num_stages": stages})
        path = os.path.join(sys.argv[3], "k.cubin")
        open(path, "wb").write(k.asm["cubin"])
        usage = subprocess.run([cuobjdump, "--dump-resource-usage", path], capture_output=True, text=True).stdout
        report.append(dict(kernel=fn.__name__, precision=precision, regs=int(re.search(r"REG:(\d+)", usage)[1]),
                           stack=int(re.search(r"STACK:(\d+)", usage)[1]), shared=k.metadata.shared))
print("REPORT" + json.dumps(report))
'''


def test_kernels_compile_for_sm90_without_spills(tmp_path):
    """The interpreter skips the real compiler: lower every launch the full-size model makes through
    Triton's NVIDIA backend and ptxas for sm_90 (no GPU needed) and check nothing spills to local memory."""
    script = tmp_path / "aot.py"
    script.write_text(AOT_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, str(script), str(ROOT), "ieee,tf32x3", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")][-1][len("REPORT"):])
    assert len(report) == 12  # 6 launches (4 without a carried state, 2 scans with one) x 2 precisions
    for row in report:
        assert row["stack"] == 0 and row["regs"] <= 255, row
        assert row["shared"] <= 227 * 1024, row
