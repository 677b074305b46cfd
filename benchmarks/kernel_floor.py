"""The kernel floor of a forward: its GEMM and attention kernels replayed alone, timed, summed.

Any implementation with the same numerics must run these kernels (the same matrix products and softmax
attentions, in the same dtypes); everything else it does (norms, gates, copies, layout changes) comes on top.
So `floor / reference time` is the best speed ratio reachable without changing the numerics or the kernels:
it says whether a goal like "2x faster than diffusers" is reachable at a given shape.

The forward runs once under a dispatch mode that records every GEMM / attention call (op, shapes, strides,
dtypes); each distinct call is then replayed on fresh random tensors of the same layout, best of `repeats`.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
FLOOR_OPS = {
    aten.mm.default: "GEMM", aten.addmm.default: "GEMM", aten.bmm.default: "GEMM",
    aten.baddbmm.default: "GEMM", aten.mm.out: "GEMM", aten.addmm.out: "GEMM", aten.bmm.out: "GEMM",
    aten._scaled_dot_product_flash_attention_for_cpu.default: "attention",
}
if hasattr(torch.ops.mkldnn, "_linear_pointwise"):  # the oneDNN linear (sana_wm_core/model/kernels/linear.py)
    FLOOR_OPS[torch.ops.mkldnn._linear_pointwise.default] = "GEMM"


def _layout(a, rows: int):
    """Hashable description of one argument: tensors by shape / stride / dtype, a weight packed for oneDNN by
    shape / dtype and the rows of the product it was packed for; other values as they are."""
    if isinstance(a, torch.Tensor) and a.is_mkldnn:
        return ("P", tuple(a.shape), a.dtype, rows)
    if isinstance(a, torch.Tensor):
        return ("T", tuple(a.shape), tuple(a.stride()), a.dtype)
    if isinstance(a, (list, tuple)):
        return tuple(_layout(x, rows) for x in a)
    return a


def _rebuild(d):
    """A random tensor (or plain value) with the recorded layout."""
    if isinstance(d, tuple) and d and d[0] == "P":
        return torch.ops.mkldnn._reorder_linear_weight(torch.randn(d[1]).to(d[2]), d[3])
    if isinstance(d, tuple) and d and d[0] == "T":
        _, shape, stride, dtype = d
        size = 1 + sum((s - 1) * st for s, st in zip(shape, stride)) if all(shape) else 0
        base = torch.randn(max(size, 1)).to(dtype)
        return base.as_strided(shape, stride)
    if isinstance(d, tuple):
        return tuple(_rebuild(x) for x in d)
    return d


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FLOOR_OPS:
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            rows = x.numel() // x.shape[-1] if x is not None and x.dim() and x.shape[-1] else 1
            self.calls[(func, _layout(args, rows),
                        tuple(sorted((k, _layout(v, rows)) for k, v in kwargs.items())))] += 1
        return func(*args, **kwargs)


def kernel_floor_ms(forward: Callable[[], object], repeats: int = 3) -> dict:
    """{'GEMM': ms, 'attention': ms, 'total': ms}: one forward's GEMM and attention kernels run alone."""
    rec = _Recorder()
    with torch.no_grad(), rec:
        forward()
    out = {"GEMM": 0.0, "attention": 0.0}
    with torch.no_grad():
        for (func, args, kwargs), count in rec.calls.items():
            a, kw = _rebuild(args), {k: _rebuild(v) for k, v in kwargs}
            func(*a, **kw)  # warm-up
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                func(*a, **kw)
                best = min(best, time.perf_counter() - t0)
            out[FLOOR_OPS[func]] += best * 1000 * count
    out["total"] = out["GEMM"] + out["attention"]
    return out
