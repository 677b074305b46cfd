"""Frame-wise bidirectional Gated DeltaNet scan (one delta-rule step per latent frame, S tokens at once).

State M (Dk x Dv) per (batch, head). With K_t, V_t the (S, D) rows of frame t and beta_t per token:
    G_t = K_t^T diag(beta_t) K_t,   A_t = K_t^T diag(beta_t) V_t,   W_t = gamma_t (I - G_t)
    forward  (inclusive):  M_t = W_t M_{t-1} + A_t
    reverse  (exclusive):  R_t = W_{t+1} R_{t+1} + A_{t+1},  R_{T-1} = 0   (and R_t = 0 at a chunk end
                           in the chunk-causal variant)
    output:                num_t = Q_t (M_t + R_t)
The normalised variant adds a vector state z (target 1) on the unrotated q/k, the same recurrence with
Gz_t = Kh_t^T beta_t Kh_t and A = Kh_t^T beta_t 1;  den_t = Qh_t (z_t + r_t);  returns num / (den + eps).

Why this is faster than the reference formulation: G and A are built once per frame with one GEMM and
shared by both directions (the reference rebuilds them on flipped, shifted copies), both directions
advance in one loop, and they are summed before a single output GEMM. All of it is batched GEMMs, which
is also the fast path on CUDA.

Why not flash-linear-attention's `chunk_gated_delta_rule` on CUDA: fla implements the token-serial delta
rule (one rank-1 update per token, prod_s (I - b_s k_s k_s^T)); this model applies all S tokens of a frame
against the same pre-update state (I - sum_s b_s k_s k_s^T), which differs at second order, so fla's
kernels would change the numbers (dit_spec.md §11: the release uses fla only for its short conv). The
frame-wise rule is GEMM-shaped (D x S x D per frame), which cuBLAS tensor cores already run at speed.

On CUDA the same math runs as 4-6 Triton launches per call (`gdn_triton.py`: the state stays in
registers across frames instead of ~6 small launches per frame). Which one runs is a `KernelSettings`
(sana_wm_core/runtime/kernels.py; `kernels=`, the model passes its own; the SANA_WM_GDN_KERNEL /
SANA_WM_GDN_PRECISION variables only supply the default): gdn torch|triton forces one implementation (auto:
Triton on CUDA when it imports and has a kernel for the shapes, else this file); gdn_precision
ieee|tf32x3|tf32 picks the Triton fp32-dot mode (default ieee, the numerics of this file's fp32 matmuls).
CPU tensors always take this file's path unless forced. In auto mode the Triton kernel must first pass
`triton_self_check` (once per device, dtype and head dims) against this file's scan; a kernel that fails to
compile, raises or disagrees is never used.
"""
from __future__ import annotations

import logging
import os
from typing import NamedTuple, Optional, Sequence

import torch

from ...runtime.kernels import KERNEL_ENV, PRECISION_ENV, KernelSettings  # noqa: F401  (re-exported names)

log = logging.getLogger("sana_wm")
_triton_state: dict = {}  # "module": the imported gdn_triton, or "error": why it is unusable (logged once)


class GDNState(NamedTuple):
    """Forward-direction recurrent state after a window's last frame (fp32), carried to the next window.

    num: (B, H, Dk, Dv) the numerator state M; den: (B, H, Dk, 1) the normaliser state z, or None when the
    call had no normaliser stream. The reverse direction never crosses a window end, so this is all a
    chunk-causal model needs from the frames before a window that starts at a chunk boundary."""

    num: torch.Tensor
    den: Optional[torch.Tensor] = None


def _triton_module():
    """gdn_triton, imported on first CUDA use; None (after one log line) when triton is unusable."""
    if "module" not in _triton_state and "error" not in _triton_state:
        try:
            from . import gdn_triton
            _triton_state["module"] = gdn_triton
        except Exception as exc:  # triton missing or broken: the torch path still works
            _triton_state["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("SANA-WM GDN: Triton kernel unavailable (%s); using the PyTorch scan", _triton_state["error"])
    return _triton_state.get("module")


_SELF_CHECK_TOL = {"ieee": 1e-4, "tf32x3": 1e-3, "tf32": 3e-2}  # relative to the largest output
_self_checks: dict = {}  # (device, dtype, Dk, Dv, normalised, precision) -> bool


def triton_self_check(mod, q: torch.Tensor, v: torch.Tensor, normalised: bool, precision: str) -> bool:
    """Runs the Triton kernel once against the PyTorch scan on a small random problem with this call's device,
    dtype and head dims before trusting it (cached). The kernel was validated under Triton's interpreter and
    compiled for sm_90 without spills, but a GPU, driver or Triton version it has not met could still
    compute wrong numbers without raising: then this says so once and the PyTorch scan is used instead."""
    key = (str(q.device), q.dtype, q.shape[-1], v.shape[-1], normalised, precision)
    if key not in _self_checks:
        g = torch.Generator().manual_seed(0)
        B, H, T, S = 1, 2, 5, 37  # S not a power of two, several frames in both directions

        def rnd(*shape, scale=1.0, positive=False):
            x = torch.rand(*shape, generator=g) if positive else torch.randn(*shape, generator=g)
            return (x * scale).to(q.device, q.dtype)

        dk, dv = q.shape[-1], v.shape[-1]
        args = (rnd(B, H, T, S, dk), rnd(B, H, T, S, dk, scale=dk ** -0.5), rnd(B, H, T, S, dv),
                rnd(B, H, T, S, scale=0.5, positive=True), 0.5 + rnd(B, H, T, scale=0.5, positive=True))
        den = {}
        if normalised:  # positive features keep the denominator away from zero
            den = {"q_den": rnd(B, H, T, S, dk, positive=True), "k_den": rnd(B, H, T, S, dk, positive=True)}
        try:
            ref = _frame_gdn_torch(*args, **den)
            out = mod.frame_gdn_triton(*args, **den, precision=precision).float()
            err = float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-6))
            ok = bool(torch.isfinite(out).all()) and err <= _SELF_CHECK_TOL[precision]
            why = f"max relative error {err:.2e} > {_SELF_CHECK_TOL[precision]:.0e}"
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # a compile or launch failure: same outcome as a wrong answer
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            log.warning("SANA-WM GDN: Triton kernel self-check failed on %s (%s); using the PyTorch scan for "
                        "these shapes", q.device, why)
        _self_checks[key] = ok
    return _self_checks[key]


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "") == "1"


def _pick_triton(q: torch.Tensor, v: torch.Tensor, settings: KernelSettings):
    """The gdn_triton module when this call should run the Triton kernel, else None."""
    choice = settings.gdn
    if choice == "torch" or (choice != "triton" and not q.is_cuda):
        return None
    if choice == "triton":
        if not q.is_cuda and not _interpreting():
            raise RuntimeError(f"{KERNEL_ENV}=triton needs CUDA tensors (got {q.device}); unset it or set "
                               f"{KERNEL_ENV}=torch to run the PyTorch scan on this device")
        mod = _triton_module()
        if mod is None:
            raise RuntimeError(f"{KERNEL_ENV}=triton but the Triton kernel cannot load "
                               f"({_triton_state['error']}); install triton or set {KERNEL_ENV}=torch")
        if not mod.supports(q, v):
            raise RuntimeError(f"{KERNEL_ENV}=triton but no kernel for q {tuple(q.shape)} {q.dtype}, "
                               f"v {tuple(v.shape)} {v.dtype} (head dims <= {mod.MAX_HEAD_DIM}); use torch")
        return mod
    mod = _triton_module()
    return mod if mod is not None and mod.supports(q, v) else None


def _transitions(k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """G = K^T beta K and A = K^T beta V for every frame (batched GEMMs). Shapes (B,H,T,D,D|Dv)."""
    kbt = (k * beta.unsqueeze(-1)).transpose(-1, -2)
    return torch.matmul(kbt, k), torch.matmul(kbt, v)


def _bidirectional_scan(G: torch.Tensor, A: torch.Tensor, decay: torch.Tensor,
                        reset_after: Sequence[bool], init: Optional[torch.Tensor] = None,
                        want_final: bool = False):
    """Inclusive forward + exclusive reverse states, summed: (B,H,T,D,Dv).

    Both directions advance in the same loop step (stacked on a leading axis), so a T-frame scan costs T
    batched GEMM launches instead of 2T, which matters on GPUs at 121 latent frames.
    init: (B,H,D,Dv) forward state before frame 0 (None = zeros). With want_final, returns (states, the
    forward state after the last frame)."""
    T = G.shape[2]
    Gs = torch.stack([G, G.flip(2)])  # direction 1 walks frames T-1, T-2, ...
    As = torch.stack([A, A.flip(2)])
    ds = torch.stack([decay, decay.flip(2)])[..., None, None]
    fwd = torch.empty_like(A)
    rev = torch.zeros_like(A)
    m = torch.zeros_like(As[:, :, :, 0])
    if init is not None:
        m[0] = init.to(device=m.device, dtype=m.dtype)
    for i in range(T):
        m = ds[:, :, :, i] * (m - torch.matmul(Gs[:, :, :, i], m)) + As[:, :, :, i]
        fwd[:, :, i] = m[0]
        t = T - 2 - i  # the reverse step just built R_t from frame t + 1
        if t >= 0:
            if reset_after[t]:
                m[1].zero_()
            else:
                rev[:, :, t] = m[1]
    final = fwd[:, :, T - 1].clone() if want_final else None
    states = fwd.add_(rev)
    return (states, final) if want_final else states


GDN_CHUNK_ELEMENTS = 1 << 28  # fp32 working-set cap per call: larger inputs are processed a few heads at a time


def frame_gdn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, decay: torch.Tensor, *,
              q_den: Optional[torch.Tensor] = None, k_den: Optional[torch.Tensor] = None, eps: float = 1e-8,
              chunk_id: Optional[Sequence[int]] = None, initial_state: Optional[GDNState] = None,
              output_final_state: bool = False, kernels: Optional[KernelSettings] = None):
    """Bidirectional frame-wise delta rule.

    q, k, v: (B, H, T, S, D) (q/k already rotated for the numerator); beta: (B, H, T, S); decay: (B, H, T).
    q_den/k_den: unrotated (B, H, T, S, D) for the normaliser stream; when None the numerator is returned.
    chunk_id: chunk index per frame for the chunk-causal variant (the reverse scan stops at chunk ends).
    initial_state: the `GDNState` of the frames before this window (None = none); output_final_state: also
    return the forward `GDNState` after the last frame, as `(out, state)` (flash-linear-attention's contract).
    Computes in fp32 (recurrent stability, as the reference) and returns (B, H, T, S, D) fp32.
    Heads are independent, so long videos run a few heads at a time to bound the fp32 working set.
    On CUDA this runs the Triton kernel when available; `kernels` picks (default: `KernelSettings.from_env()`).
    """
    if initial_state is not None:
        _check_state(initial_state, q, v, q_den is not None)
    state_kw = {"initial_state": initial_state, "output_final_state": output_final_state}
    settings = kernels if kernels is not None else KernelSettings.from_env()
    triton_mod = _pick_triton(q, v, settings)
    precision, forced = settings.gdn_precision, settings.forced_triton
    if triton_mod is not None:
        if not forced and not triton_self_check(triton_mod, q, v, q_den is not None, precision):
            triton_mod = None
    if triton_mod is not None:
        try:
            return triton_mod.frame_gdn_triton(q, k, v, beta, decay, q_den=q_den, k_den=k_den, eps=eps,
                                               chunk_id=chunk_id, precision=precision, **state_kw)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # e.g. a compile failure on an untested GPU: keep running, on torch
            if forced:
                raise
            _triton_state.pop("module", None)
            _triton_state["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("SANA-WM GDN: Triton kernel failed (%s); using the PyTorch scan from now on",
                        _triton_state["error"])
    return _frame_gdn_torch(q, k, v, beta, decay, q_den=q_den, k_den=k_den, eps=eps, chunk_id=chunk_id,
                            **state_kw)


def _check_state(state: GDNState, q: torch.Tensor, v: torch.Tensor, normalised: bool) -> None:
    """A carried state must fit this call's batch, heads and head dims (and carry a normaliser when needed)."""
    B, H, _, _, dk = q.shape
    want = (B, H, dk, v.shape[-1])
    if not isinstance(state, GDNState) or tuple(state.num.shape) != want:
        got = tuple(state.num.shape) if isinstance(state, GDNState) else type(state).__name__
        raise ValueError(f"initial_state.num must be {want} (batch, heads, key dim, value dim), got {got}")
    if normalised and (state.den is None or tuple(state.den.shape) != (B, H, dk, 1)):
        raise ValueError(f"initial_state.den must be {(B, H, dk, 1)} for a normalised GDN call (pass the state "
                         "returned by the same layer's previous window)")


def _frame_gdn_torch(q, k, v, beta, decay, *, q_den=None, k_den=None, eps=1e-8, chunk_id=None,
                     initial_state=None, output_final_state=False):
    """The PyTorch scan (batched GEMMs); see `frame_gdn`."""
    B, H = q.shape[:2]
    heads_per_call = max(1, GDN_CHUNK_ELEMENTS // max(1, q[:, :1].numel()))
    if heads_per_call < H:
        out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
        finals = []
        for h in range(0, H, heads_per_call):
            sl = slice(h, h + heads_per_call)
            init = None
            if initial_state is not None:
                init = GDNState(initial_state.num[:, sl],
                                None if initial_state.den is None else initial_state.den[:, sl])
            res = _frame_gdn_torch(q[:, sl], k[:, sl], v[:, sl], beta[:, sl], decay[:, sl],
                                   q_den=None if q_den is None else q_den[:, sl],
                                   k_den=None if k_den is None else k_den[:, sl], eps=eps, chunk_id=chunk_id,
                                   initial_state=init, output_final_state=output_final_state)
            if output_final_state:
                res, fin = res
                finals.append(fin)
            out[:, sl] = res
        if not output_final_state:
            return out
        den = None if q_den is None else torch.cat([f.den for f in finals], 1)
        return out, GDNState(torch.cat([f.num for f in finals], 1), den)
    T = q.shape[2]
    q, k, v = q.float(), k.float(), v.float()
    beta, decay = beta.float(), decay.float()
    reset_after = [False] * T
    if chunk_id is not None:
        reset_after = [t + 1 < T and chunk_id[t + 1] != chunk_id[t] for t in range(T)]
    G, A = _transitions(k, v, beta)
    init = None if initial_state is None else initial_state.num
    states = _bidirectional_scan(G, A, decay, reset_after, init, output_final_state)
    if output_final_state:
        states, final_num = states
    del G, A
    num = torch.matmul(q, states)
    if q_den is None:
        return (num, GDNState(final_num)) if output_final_state else num
    k_den = k_den.float()
    kb = k_den * beta.unsqueeze(-1)
    Gz = torch.matmul(kb.transpose(-1, -2), k_den)  # the normaliser's transitions, same form with A = K^T beta 1
    z_init = None if initial_state is None else initial_state.den
    z = _bidirectional_scan(Gz, kb.sum(dim=3).unsqueeze(-1), decay, reset_after, z_init,
                            output_final_state)  # (B,H,T,D,1)
    if output_final_state:
        z, final_den = z
    den = torch.matmul(q_den.float(), z)  # (B,H,T,S,1)
    out = num / (den + eps)
    return (out, GDNState(final_num, final_den)) if output_final_state else out
