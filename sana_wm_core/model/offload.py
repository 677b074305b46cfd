"""Block-wise weight offload: weights live in (pinned) CPU memory, each block is copied to the compute
device just before it runs and dropped after; on CUDA the next block is prefetched on a side stream so
the copy overlaps the current block's compute. The first `blocks_resident` blocks stay on the device.

Peak device memory = non-block weights + resident blocks + two streamed blocks + activations, which lets
the 961-frame Stage 1 fit a 24 GB card (2.6B params in bf16 = 5.3 GB; ~260 MB per block).
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn as nn


class BlockOffloader:
    def __init__(self, model: nn.Module, device: Union[str, torch.device], blocks_resident: int = 0) -> None:
        self.model = model
        self.device = torch.device(device)
        self.blocks = list(model.blocks)
        self.resident = max(0, min(int(blocks_resident), len(self.blocks)))
        self.cuda = self.device.type == "cuda" and torch.cuda.is_available()
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.events: dict = {}
        self.cpu: dict = {}  # block index -> {tensor name: cpu tensor}
        for i, blk in enumerate(self.blocks):
            if i < self.resident:
                blk.to(self.device)
                continue
            store = {}
            for name, t in _tensors(blk):
                c = t.detach().to("cpu")
                if self.cuda:
                    c = c.pin_memory()
                store[name] = c
                assign_tensor(blk, name, c)
            self.cpu[i] = store
        for name, child in model.named_children():
            if name != "blocks":
                child.to(self.device)
        for name, p in list(model._parameters.items()):
            if p is not None:
                model._parameters[name] = nn.Parameter(p.data.to(self.device), requires_grad=False)
        self.loaded: set = set()

    def prepare(self) -> None:
        """Called at the start of a forward: start copying the first streamed block."""
        self._prefetch(self.resident)

    def _prefetch(self, i: int) -> None:
        if i not in self.cpu or i in self.loaded:
            return
        blk = self.blocks[i]
        if self.cuda:
            with torch.cuda.stream(self.stream):
                for name, c in self.cpu[i].items():
                    assign_tensor(blk, name, c.to(self.device, non_blocking=True))
                ev = torch.cuda.Event()
                ev.record(self.stream)
                self.events[i] = ev
        else:
            for name, c in self.cpu[i].items():
                assign_tensor(blk, name, c.to(self.device))
        self.loaded.add(i)

    def before_block(self, i: int) -> None:
        self._prefetch(i)
        if self.cuda and i in self.events:
            cur = torch.cuda.current_stream(self.device)
            cur.wait_event(self.events.pop(i))
            for _, t in _tensors(self.blocks[i]):
                t.record_stream(cur)
        self._prefetch(i + 1)

    def after_block(self, i: int) -> None:
        if i not in self.cpu:
            return
        for name, c in self.cpu[i].items():
            assign_tensor(self.blocks[i], name, c)
        self.loaded.discard(i)


def _tensors(module: nn.Module):
    for name, p in module.named_parameters():
        yield name, p.data
    for name, b in module.named_buffers():
        if b is not None:
            yield name, b


def assign_tensor(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Swap the parameter (frozen) or buffer at dotted `name` for `value` without copying, so loading and
    offload can move or materialise weights one tensor at a time."""
    mod_name, _, leaf = name.rpartition(".")
    mod = module.get_submodule(mod_name) if mod_name else module
    if leaf in mod._parameters:
        mod._parameters[leaf] = nn.Parameter(value, requires_grad=False)
    else:
        mod._buffers[leaf] = value


def enable_block_offload(model: nn.Module, device: Union[str, torch.device],
                         blocks_resident: int = 0) -> BlockOffloader:
    """Stream the model's blocks to `device` one at a time during forward (see module docstring).

    Inputs are moved to `device` by the forward; call `disable_block_offload(model)` to undo."""
    off = BlockOffloader(model, device, blocks_resident)
    model._offloader = off
    return off


def disable_block_offload(model: nn.Module, device: Optional[Union[str, torch.device]] = None) -> None:
    """Bring every block back to `device` (default: the compute device the blocks streamed to) and remove the
    hooks; pass "cpu" to park the whole model on the host."""
    off = getattr(model, "_offloader", None)
    if off is None:
        return
    for i, store in off.cpu.items():
        for name, c in store.items():
            assign_tensor(off.blocks[i], name, c.to(device or off.device))
    model._offloader = None
