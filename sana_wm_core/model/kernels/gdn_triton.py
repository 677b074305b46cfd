"""Triton implementation of `frame_gdn` (forward, inference): the same frame-wise bidirectional delta rule.

Four launches per call (six with the normaliser) instead of the PyTorch path's ~6 small launches per frame:

  A. transitions, parallel over (frame, batch*head, column block):  G_t = K_t^T diag(beta_t) K_t and
     A_t = K_t^T diag(beta_t) V_t (for the normaliser Gz_t from the unrotated keys and az_t = K_t^T beta_t),
     stored fp32 and zero-padded to the head dim rounded up to a power of two.
  B. scan, one program per (value block, batch*head, direction): the fp32 state block stays in registers
     while the program walks the frames, M <- gamma_t (M - G_t M) + A_t. Direction 0 stores the inclusive
     forward state at t, direction 1 walks T-1..0 and stores the exclusive reverse state at t - 1
     (zeroed at a chunk end in the chunk-causal variant). Both directions run concurrently.
  C. output, parallel over (value block, frame, batch*head), each program loading its summed state once
     and walking the frame's tokens: num = Q (M_fwd + M_rev) and, with the normaliser,
     den = Qh (z_fwd + z_rev), out = num / (den + eps), written fp32.

Inputs may be fp32, bf16 or fp16 and any strides with a unit last dim; all arithmetic is fp32.
`precision` picks how fp32 dots use tensor cores: "ieee" (default, the PyTorch fp32 path's numerics),
"tf32x3" (about fp32 accuracy on tensor cores) or "tf32" (fastest, 10-bit mantissa operands).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

from ...runtime.kernels import GDN_PRECISIONS as PRECISIONS
MAX_HEAD_DIM = 128  # the state block of one program is (Dk padded) x BV fp32 registers


@triton.jit
def _transition_kernel(x_ptr, y_ptr, beta_ptr, out_ptr, vec_ptr,
                       sxb, sxh, sxt, sxs, syb, syh, syt, sys, sbb, sbh, sbt, sbs,
                       H, DX, DY, WP, T: tl.constexpr, S: tl.constexpr,
                       DXP: tl.constexpr, BN: tl.constexpr, BS: tl.constexpr,
                       HAS_VEC: tl.constexpr, PRECISION: tl.constexpr):
    """out[bh, t, :, cols] = X_t^T diag(beta_t) Y_t[:, cols] (DXP x BN); vec[bh, t] = X_t^T beta_t."""
    jb = tl.program_id(0)
    t = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    b = bh // H
    h = bh % H
    rows = tl.arange(0, DXP)
    cols = jb * BN + tl.arange(0, BN)
    offs = tl.arange(0, BS)
    x_base = x_ptr + b * sxb + h * sxh + t * sxt
    y_base = y_ptr + b * syb + h * syh + t * syt
    b_base = beta_ptr + b * sbb + h * sbh + t * sbt
    acc = tl.zeros((DXP, BN), dtype=tl.float32)
    vec = tl.zeros((DXP,), dtype=tl.float32)
    for s0 in range(0, S, BS):
        s = s0 + offs
        sm = s < S
        bet = tl.load(b_base + s * sbs, mask=sm, other=0.0).to(tl.float32)
        x = tl.load(x_base + s[:, None] * sxs + rows[None, :], mask=sm[:, None] & (rows[None, :] < DX),
                    other=0.0).to(tl.float32)
        y = tl.load(y_base + s[:, None] * sys + cols[None, :], mask=sm[:, None] & (cols[None, :] < DY),
                    other=0.0).to(tl.float32)
        xb = x * bet[:, None]
        acc = tl.dot(tl.trans(xb), y, acc, input_precision=PRECISION)
        if HAS_VEC:
            vec += tl.sum(xb, axis=0)
    frame = bh * T + t
    tl.store(out_ptr + frame * DXP * WP + rows[:, None] * WP + cols[None, :], acc, mask=cols[None, :] < WP)
    if HAS_VEC:
        tl.store(vec_ptr + frame * DXP + rows, vec, mask=(rows < DXP) & (jb == 0))


@triton.jit
def _scan_kernel(g_ptr, a_ptr, decay_ptr, reset_ptr, st_ptr, init_ptr,
                 sdb, sdh, sdt, H, BHT, W, T: tl.constexpr,
                 DXP: tl.constexpr, BV: tl.constexpr, KC: tl.constexpr, PRECISION: tl.constexpr,
                 HAS_INIT: tl.constexpr):
    """Direction 0: st[0, bh, t] = M_t (inclusive). Direction 1: st[1, bh, t] = R_t (exclusive).
    With HAS_INIT, direction 0 starts from init[bh] (the state carried from the frames before the window).

    The state block lives in registers; G_t M is summed over KC-row slices of the previous state, read
    back from the history this program has just written (a block barrier orders the store and the
    reads), which keeps the dot operands small enough not to spill in fp32 ("ieee") mode."""
    vb = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    rev = tl.program_id(2)
    b = bh // H
    h = bh % H
    rows = tl.arange(0, DXP)
    kc = tl.arange(0, KC)
    cols = vb * BV + tl.arange(0, BV)
    cm = cols[None, :] < W
    tile = rows[:, None] * W + cols[None, :]
    st_base = st_ptr + rev * BHT * DXP * W + bh * T * DXP * W
    m = tl.zeros((DXP, BV), dtype=tl.float32)
    init_base = init_ptr + bh * DXP * W
    if HAS_INIT:
        m = tl.load(init_base + tile, mask=cm & (rev == 0), other=0.0)
    # the reverse state of the last frame is empty
    tl.store(st_base + (T - 1) * DXP * W + tile, m, mask=cm & (rev == 1))
    for i in range(0, T):
        t = i + rev * (T - 1 - 2 * i)  # i forwards, T-1-i backwards
        frame = bh * T + t
        prev = t - 1 + rev  # where the previous state was stored: M_{t-1} at t-1, R_t at t
        gm = tl.zeros((DXP, BV), dtype=tl.float32)
        for k0 in tl.static_range(0, DXP, KC):
            g = tl.load(g_ptr + frame * DXP * DXP + rows[:, None] * DXP + (k0 + kc)[None, :])
            mk = tl.load(st_base + prev * DXP * W + (k0 + kc)[:, None] * W + cols[None, :],
                         mask=cm & (i > 0), other=0.0)
            if HAS_INIT:  # the first forward step reads the carried state instead of the history
                mk += tl.load(init_base + (k0 + kc)[:, None] * W + cols[None, :],
                              mask=cm & (i == 0) & (rev == 0), other=0.0)
            gm = tl.dot(g, mk, gm, input_precision=PRECISION)
        a = tl.load(a_ptr + frame * DXP * W + tile, mask=cm, other=0.0)
        gamma = tl.load(decay_ptr + b * sdb + h * sdh + t * sdt).to(tl.float32)
        m = gamma * (m - gm) + a
        dst = t - rev  # the reverse step from frame t builds R_{t-1}
        valid = dst >= 0
        reset = tl.load(reset_ptr + tl.maximum(dst, 0)) * rev
        m = tl.where(reset != 0, 0.0, m)
        tl.store(st_base + dst * DXP * W + tile, m, mask=cm & valid)
        tl.debug_barrier()  # the next step reads this state back


@triton.jit
def _output_kernel(q_ptr, st_ptr, qd_ptr, zst_ptr, out_ptr, eps,
                   sqb, sqh, sqt, sqs, sdb, sdh, sdt, sds,
                   H, DK, DV, BHT, T: tl.constexpr, S: tl.constexpr,
                   DXP: tl.constexpr, BS: tl.constexpr, BV: tl.constexpr,
                   HAS_DEN: tl.constexpr, PRECISION: tl.constexpr):
    """out[b, h, t, :, cols] = Q (M_fwd + M_rev) [/ (Qh (z_fwd + z_rev) + eps)], fp32, contiguous.

    One program per (value block, frame, batch*head) walks the frame's tokens, so each summed state
    block is read once."""
    vb = tl.program_id(0)
    t = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    b = bh // H
    h = bh % H
    rows = tl.arange(0, DXP)
    cols = vb * BV + tl.arange(0, BV)
    offs = tl.arange(0, BS)
    cm = cols < DV
    frame = bh * T + t
    tile = frame * DXP * DV + rows[:, None] * DV + cols[None, :]
    st = tl.load(st_ptr + tile, mask=cm[None, :], other=0.0) \
        + tl.load(st_ptr + BHT * DXP * DV + tile, mask=cm[None, :], other=0.0)
    if HAS_DEN:
        z = tl.load(zst_ptr + frame * DXP + rows) + tl.load(zst_ptr + BHT * DXP + frame * DXP + rows)
    q_base = q_ptr + b * sqb + h * sqh + t * sqt
    qd_base = qd_ptr + b * sdb + h * sdh + t * sdt
    out_base = out_ptr + frame * S * DV
    for s0 in range(0, S, BS):
        s = s0 + offs
        sm = s < S
        q = tl.load(q_base + s[:, None] * sqs + rows[None, :], mask=sm[:, None] & (rows[None, :] < DK),
                    other=0.0).to(tl.float32)
        res = tl.dot(q, st, input_precision=PRECISION)
        if HAS_DEN:
            qd = tl.load(qd_base + s[:, None] * sds + rows[None, :], mask=sm[:, None] & (rows[None, :] < DK),
                         other=0.0).to(tl.float32)
            den = tl.sum(qd * z[None, :], axis=1)
            res = res / (den[:, None] + eps)
        tl.store(out_base + s[:, None] * DV + cols[None, :], res, mask=sm[:, None] & cm[None, :])


def _unit_last(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def _pow2(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


TOKEN_BLOCK = 32  # tokens per inner step of the transition and output kernels
SCAN_KC = 32  # rows of the previous state per dot slice in the scan


def transition_bn(width: int) -> int:
    return min(32, _pow2(width))


def scan_bv(width: int) -> int:
    return min(32, _pow2(width))


def output_bv(dv: int) -> int:
    return min(64, _pow2(dv))


def warps(dxp: int) -> int:
    """Launch widths checked by compiling for sm_90 (ptxas): with 8 warps at head dim 128 none of the three
    kernels spills registers in any precision mode; smaller heads need fewer."""
    return 8 if dxp >= 128 else 4


def supports(q: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether this kernel has a configuration for these shapes and dtypes."""
    ok_dtype = (torch.float32, torch.bfloat16, torch.float16)
    return (q.dim() == 5 and q.shape[-1] <= MAX_HEAD_DIM and v.shape[-1] <= MAX_HEAD_DIM
            and q.dtype in ok_dtype and v.dtype in ok_dtype and q.shape[2] >= 1 and q.shape[3] >= 1)


_RESET_CACHE: dict = {}


def _reset_flags(chunk_id: Optional[tuple], T: int, device: torch.device) -> torch.Tensor:
    """int32 (T,): 1 where frame t ends a chunk (the reverse state restarts), cached per device so the
    steady state makes no host-to-device copy."""
    key = (chunk_id, T, str(device))
    if key not in _RESET_CACHE:
        flags = [int(chunk_id is not None and t + 1 < T and chunk_id[t + 1] != chunk_id[t]) for t in range(T)]
        if len(_RESET_CACHE) > 64:
            _RESET_CACHE.clear()
        _RESET_CACHE[key] = torch.tensor(flags, dtype=torch.int32, device=device)
    return _RESET_CACHE[key]


def _transitions(x, y, beta, dxp: int, width: int, with_vec: bool, precision: str):
    """(B*H*T, dxp, width) fp32 block X^T beta Y (zero past Y's columns, so width=dxp gives a square
    padded G), plus the (B*H*T, dxp) vector X^T beta when with_vec."""
    B, H, T, S, dx = x.shape
    out = torch.empty(B * H * T, dxp, width, dtype=torch.float32, device=x.device)
    vec = torch.empty(B * H * T, dxp, dtype=torch.float32, device=x.device) if with_vec else out
    bn = transition_bn(width)
    grid = (triton.cdiv(width, bn), T, B * H)
    _transition_kernel[grid](x, y, beta, out, vec, *x.stride()[:4], *y.stride()[:4], *beta.stride(),
                             H, dx, y.shape[-1], width, T=T, S=S, DXP=dxp, BN=bn, BS=TOKEN_BLOCK,
                             HAS_VEC=with_vec, PRECISION=precision, num_warps=warps(dxp))
    return out, vec


def _scan(G, A, decay, reset, B: int, H: int, T: int, dxp: int, width: int, precision: str,
          init: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(2, B*H*T, dxp, width) fp32: inclusive forward states, exclusive reverse states.
    init: (B, H, d, width) forward state before frame 0, zero-padded here to dxp rows."""
    st = torch.empty(2, B * H * T, dxp, width, dtype=torch.float32, device=G.device)
    init_buf = st  # any pointer when there is no initial state (never read)
    if init is not None:
        init_buf = torch.zeros(B * H, dxp, width, dtype=torch.float32, device=G.device)
        init_buf[:, :init.shape[2]] = init.reshape(B * H, init.shape[2], width).to(init_buf)
    bv = scan_bv(width)
    grid = (triton.cdiv(width, bv), B * H, 2)
    # num_stages=1: no software prefetch of the state reads across the store/barrier of the previous step
    _scan_kernel[grid](G, A, decay, reset, st, init_buf, *decay.stride(), H, B * H * T, width, T=T,
                       DXP=dxp, BV=bv, KC=min(SCAN_KC, dxp), PRECISION=precision, HAS_INIT=init is not None,
                       num_warps=warps(dxp), num_stages=1)
    return st


def frame_gdn_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor,
                     decay: torch.Tensor, *, q_den: Optional[torch.Tensor] = None,
                     k_den: Optional[torch.Tensor] = None, eps: float = 1e-8,
                     chunk_id: Optional[Sequence[int]] = None, precision: str = "ieee",
                     initial_state=None, output_final_state: bool = False):
    """Same contract as `kernels.gdn.frame_gdn`: (B, H, T, S, D) inputs, fp32 (B, H, T, S, Dv) output;
    `initial_state` / `output_final_state` carry the forward `GDNState` across windows as there."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: use one of {PRECISIONS}")
    if not supports(q, v):
        raise ValueError(f"frame_gdn_triton: no kernel for q {tuple(q.shape)} {q.dtype}, v {tuple(v.shape)} "
                         f"{v.dtype} (head dims <= {MAX_HEAD_DIM}, fp32/bf16/fp16)")
    B, H, T, S, dk = q.shape
    dv = v.shape[-1]
    q, k, v = _unit_last(q), _unit_last(k), _unit_last(v)
    reset = _reset_flags(None if chunk_id is None else tuple(int(c) for c in chunk_id), T, q.device)
    dxp = _pow2(dk)
    G = _transitions(k, k, beta, dxp, dxp, False, precision)[0]
    A = _transitions(k, v, beta, dxp, dv, False, precision)[0]
    states = _scan(G, A, decay, reset, B, H, T, dxp, dv, precision,
                   None if initial_state is None else initial_state.num)
    del G, A
    has_den = q_den is not None
    zst = states
    qd = q
    if has_den:
        qd, kd = _unit_last(q_den), _unit_last(k_den)
        Gz, az = _transitions(kd, kd, beta, dxp, dxp, True, precision)
        zst = _scan(Gz, az, decay, reset, B, H, T, dxp, 1, precision,
                    None if initial_state is None else initial_state.den)
        del Gz, az
    out = torch.empty(B, H, T, S, dv, dtype=torch.float32, device=q.device)
    bv = output_bv(dv)
    grid = (triton.cdiv(dv, bv), T, B * H)
    _output_kernel[grid](q, states, qd, zst, out, eps, *q.stride()[:4], *qd.stride()[:4],
                         H, dk, dv, B * H * T, T=T, S=S, DXP=dxp, BS=TOKEN_BLOCK, BV=bv,
                         HAS_DEN=has_den, PRECISION=precision, num_warps=warps(dxp))
    if not output_final_state:
        return out
    from .gdn import GDNState  # the state type lives with the dispatcher

    final_num = states[0].view(B, H, T, dxp, dv)[:, :, T - 1, :dk].clone()
    final_den = zst[0].view(B, H, T, dxp, 1)[:, :, T - 1, :dk].clone() if has_den else None
    return out, GDNState(final_num, final_den)
