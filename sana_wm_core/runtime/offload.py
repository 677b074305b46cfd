"""Block offload for any network made of a list of blocks (the Stage-1 DiT, the refiner, Gemma-3's layers).

Weights of the streamed blocks live in CPU memory (pinned on CUDA). Just before a streamed block runs its
tensors are copied to the compute device and swapped in; right after, the CPU tensors are swapped back and
the device copies are dropped. On CUDA the copy runs on a side stream and the next block's copy starts as
soon as the current one is swapped in, so it overlaps the current block's compute; after the last block the
first streamed block is fetched again for the next call. The first `resident` blocks stay on the device.

Device memory = the non-block weights + `resident` blocks + about two blocks in flight + activations: that is
what lets the 2.6B DiT (~260 MB per bf16 block) and the 13B refiner fit a 24 GB card.

Two ways to drive it: a forward we own calls `prepare()` once and `before_block(i)` / `after_block(i)` around
each block (the DiT), or `hooks=True` installs forward hooks on the blocks (networks we do not own).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

Slot = tuple[nn.Module, str, bool]  # (owner module, attribute, is a parameter)
Device = Union[str, torch.device]


def _slots(module: nn.Module, skip: frozenset = frozenset()) -> list[Slot]:
    """Every materialised parameter and buffer below `module`; meta placeholders (never-loaded branches) and
    modules whose id is in `skip` are left out."""
    out: list[Slot] = []
    for mod in module.modules():
        if id(mod) in skip:
            continue
        out += [(mod, n, True) for n, p in mod._parameters.items() if p is not None and p.device.type != "meta"]
        out += [(mod, n, False) for n, b in mod._buffers.items() if b is not None and b.device.type != "meta"]
    return out


def _get(slot: Slot) -> torch.Tensor:
    owner, name, is_param = slot
    return (owner._parameters if is_param else owner._buffers)[name]


def _set(slot: Slot, value: torch.Tensor) -> None:
    owner, name, is_param = slot
    if is_param:
        owner._parameters[name].data = value
    else:
        owner._buffers[name] = value


def assign_tensor(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Put `value` at the dotted parameter (frozen) or buffer `name` without copying, so loading can
    materialise a meta-built network one tensor at a time."""
    mod_name, _, leaf = name.rpartition(".")
    mod = module.get_submodule(mod_name) if mod_name else module
    if leaf in mod._parameters:
        mod._parameters[leaf] = nn.Parameter(value, requires_grad=False)
    else:
        mod._buffers[leaf] = value


def move_materialised(module: nn.Module, device: Device, exclude: Optional[nn.Module] = None) -> None:
    """`module.to(device)` for every tensor that exists (meta placeholders stay); tensors under `exclude`
    (e.g. the streamed block list) are not moved."""
    skip = frozenset(id(m) for m in exclude.modules()) if exclude is not None else frozenset()
    for slot in _slots(module, skip):
        _set(slot, _get(slot).detach().to(device))


class BlockOffloader:
    """Streams `blocks[resident:]` from CPU memory to `device` around each block's forward (module docstring)."""

    def __init__(self, blocks: Sequence[nn.Module], device: Device, resident: int = 0, *, hooks: bool = False):
        self.device = torch.device(device)
        self.blocks = list(blocks)
        self.resident = max(0, min(int(resident), len(self.blocks)))
        self.cuda = self.device.type == "cuda" and torch.cuda.is_available()
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.slots: dict[int, list[Slot]] = {}
        self.cpu: dict[int, list[torch.Tensor]] = {}  # streamed block index -> its host tensors, slot order
        self.pending: dict[int, tuple[list[torch.Tensor], object]] = {}  # copies started, not yet swapped in
        self.loads = 0  # streamed-block swaps so far (each one is a host -> device copy)
        self.handles: list = []
        for i, block in enumerate(self.blocks):
            slots = _slots(block)
            if i < self.resident:
                for slot in slots:
                    _set(slot, _get(slot).detach().to(self.device))
                continue
            host = []
            for slot in slots:
                t = _get(slot).detach().to("cpu")
                if self.cuda:
                    t = t.pin_memory()
                host.append(t)
                _set(slot, t)
            self.slots[i], self.cpu[i] = slots, host
            if hooks:
                self.handles.append(block.register_forward_pre_hook(lambda _m, _a, i=i: self.before_block(i)))
                self.handles.append(block.register_forward_hook(lambda _m, _a, _o, i=i: self.after_block(i)))

    def prepare(self) -> None:
        """Start copying the first streamed block (call at the start of a forward)."""
        self._start_copy(self.resident)

    def _next(self, i: int) -> Optional[int]:
        j = i + 1 if i + 1 < len(self.blocks) else self.resident  # after the last: the next call's first
        return j if j != i and j in self.cpu else None

    def _start_copy(self, i: int) -> None:
        if i not in self.cpu or i in self.pending:
            return
        if self.cuda:
            with torch.cuda.stream(self.stream):
                copies = [t.to(self.device, non_blocking=True) for t in self.cpu[i]]
                event = torch.cuda.Event()
                event.record(self.stream)
        else:
            copies, event = [t.to(self.device) for t in self.cpu[i]], None
        self.pending[i] = (copies, event)

    def before_block(self, i: int) -> None:
        """Swap block i's device copy in (waiting for its copy) and start the next block's copy."""
        if i not in self.cpu:
            return
        self._start_copy(i)
        copies, event = self.pending.pop(i)
        if self.cuda:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            for t in copies:
                t.record_stream(current)
        for slot, t in zip(self.slots[i], copies):
            _set(slot, t)
        self.loads += 1
        nxt = self._next(i)
        if nxt is not None:
            self._start_copy(nxt)

    def after_block(self, i: int) -> None:
        """Swap block i's CPU tensors back; its device copy is freed once the compute stream is done with it."""
        if i not in self.cpu:
            return
        for slot, t in zip(self.slots[i], self.cpu[i]):
            _set(slot, t)

    def remove(self, device: Optional[Device] = None) -> None:
        """Detach the hooks and drop copies in flight; with `device`, move the streamed blocks there (else they
        stay in CPU memory)."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.pending.clear()
        if device is not None:
            for i, slots in self.slots.items():
                for slot, t in zip(slots, self.cpu[i]):
                    _set(slot, t.to(device))
