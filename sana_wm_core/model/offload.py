"""Block offload for the Stage-1 DiT: attach the shared `BlockOffloader` (sana_wm_core/runtime/offload.py) to
the model's blocks and place everything else on the compute device.

The DiT's forward drives the offloader itself (`model.offloader`): it moves its inputs to the offloader's
device, calls `prepare()` once and `before_block` / `after_block` around every block.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn as nn

from ..runtime.offload import BlockOffloader, move_materialised

DEFAULT_BLOCKS_RESIDENT = 4  # offload="block": blocks kept on the device (the rest stream from pinned CPU memory)


def enable_block_offload(model: nn.Module, device: Union[str, torch.device],
                         blocks_resident: int = 0) -> BlockOffloader:
    """Stream the model's blocks to `device` one at a time during forward; the first `blocks_resident` stay there.

    Call `disable_block_offload(model)` to undo."""
    off = BlockOffloader(model.blocks, device, blocks_resident)
    move_materialised(model, off.device, exclude=model.blocks)
    model.offloader = off
    return off


def disable_block_offload(model: nn.Module, device: Optional[Union[str, torch.device]] = None) -> None:
    """Bring every block back to `device` (default: the compute device the blocks streamed to) and detach the
    offloader; pass "cpu" to park the whole model on the host."""
    off = model.offloader
    if off is None:
        return
    off.remove(device or off.device)
    model.offloader = None
