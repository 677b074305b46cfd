"""Block offload: keep only a few transformer blocks on the GPU and stream the others in per call.

Each non-resident block keeps its weights in (pinned) CPU memory. A forward pre-hook swaps the GPU
copy in (prefetched on a side CUDA stream while the previous block computes) and a forward hook
drops it again, so GPU memory holds `resident` blocks plus about two in flight.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _tensors(module: nn.Module, skip: set[int] = frozenset()) -> list[tuple[nn.Module, str, bool]]:
    """(owner, attribute, is_parameter) for every materialised parameter and buffer below `module`.

    Meta tensors (the refiner's never-loaded audio branch) are left alone.
    """
    out = []
    for mod in module.modules():
        if id(mod) in skip:
            continue
        out += [(mod, n, True) for n, p in mod._parameters.items() if p is not None and p.device.type != "meta"]
        out += [(mod, n, False) for n, b in mod._buffers.items() if b is not None and b.device.type != "meta"]
    return out


def _set(owner: nn.Module, name: str, is_param: bool, value: torch.Tensor) -> None:
    if is_param:
        owner._parameters[name].data = value
    else:
        owner._buffers[name] = value


class BlockOffloader:
    """Streams `blocks[resident:]` from CPU to `device` around each block's forward."""

    def __init__(self, blocks: Sequence[nn.Module], device: torch.device | str, resident: int):
        self.device = torch.device(device)
        self.blocks = list(blocks)
        self.resident = max(0, min(int(resident), len(self.blocks)))
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.slots: list[list[tuple[nn.Module, str, bool]]] = []
        self.host: list[list[torch.Tensor]] = []
        self.pending: dict[int, tuple[list[torch.Tensor], object]] = {}
        self.handles = []
        self.loads = 0
        for i, block in enumerate(self.blocks):
            slots = _tensors(block)
            self.slots.append(slots)
            if i < self.resident:
                for owner, name, is_param in slots:
                    t = (owner._parameters if is_param else owner._buffers)[name]
                    _set(owner, name, is_param, t.detach().to(self.device))
                self.host.append([])
                continue
            host = []
            for owner, name, is_param in slots:
                t = (owner._parameters if is_param else owner._buffers)[name].detach().to("cpu")
                if self.cuda:
                    t = t.pin_memory()
                host.append(t)
                _set(owner, name, is_param, t)
            self.host.append(host)
            self.handles.append(block.register_forward_pre_hook(self._make_pre(i)))
            self.handles.append(block.register_forward_hook(self._make_post(i)))

    def _next(self, i: int) -> int | None:
        j = i + 1
        if j >= len(self.blocks):
            j = self.resident  # the next call starts again from the first streamed block
        return j if j != i and j >= self.resident and j < len(self.blocks) else None

    def _start_copy(self, i: int) -> None:
        if i in self.pending:
            return
        if self.cuda:
            with torch.cuda.stream(self.stream):
                copies = [t.to(self.device, non_blocking=True) for t in self.host[i]]
                event = torch.cuda.Event()
                event.record(self.stream)
        else:
            copies, event = [t.to(self.device) for t in self.host[i]], None
        self.pending[i] = (copies, event)

    def _make_pre(self, i: int):
        def hook(_module, _args):
            self._start_copy(i)
            copies, event = self.pending.pop(i)
            if self.cuda:
                current = torch.cuda.current_stream(self.device)
                current.wait_event(event)
                for t in copies:
                    t.record_stream(current)
            for (owner, name, is_param), t in zip(self.slots[i], copies):
                _set(owner, name, is_param, t)
            self.loads += 1
            nxt = self._next(i)
            if nxt is not None:
                self._start_copy(nxt)
        return hook

    def _make_post(self, i: int):
        def hook(_module, _args, output):
            for (owner, name, is_param), t in zip(self.slots[i], self.host[i]):
                _set(owner, name, is_param, t)
            return output
        return hook

    def remove(self) -> None:
        """Detaches the hooks; streamed blocks stay in CPU memory."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.pending.clear()


def move_materialised(module: nn.Module, device: torch.device | str, exclude: nn.Module | None = None) -> None:
    """`module.to(device)` for every tensor that exists (meta placeholders stay where they are).

    Tensors under `exclude` (e.g. a streamed layer list) are not moved.
    """
    skip = {id(m) for m in exclude.modules()} if exclude is not None else set()
    for owner, name, is_param in _tensors(module, skip):
        t = (owner._parameters if is_param else owner._buffers)[name]
        _set(owner, name, is_param, t.detach().to(device))
