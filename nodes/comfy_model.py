"""ComfyUI glue for the Stage-1 DiT: hand it to ComfyUI's model management and check interrupts per block.

Typical use in a loader / sampler node (nodes/models.py, nodes/sampling.py):

    from .comfy_model import wrap_for_comfy, comfy_block_callback
    import comfy.model_management as mm

    model = load_transformer(path, dtype="bf16")                      # lives on the CPU
    patcher = wrap_for_comfy(model, mm.get_torch_device(), mm.unet_offload_device())
    ...                                                                # return patcher as SANAWM_MODEL
    mm.load_models_gpu([patcher], memory_required=patcher.model.memory_required(latent.shape))
    net = patcher.model
    net.set_block_callback(comfy_block_callback())                    # Cancel stops within one block
    v = net(x.to(patcher.load_device), t, text, mask, camera, plucker)

ComfyUI then places the weights on the GPU and frees them under memory pressure like any other model.
When only part of the model fits, ComfyUI leaves some layers on the offload device; every layer of the
DiT casts its weights to the activation's device on use, so that still runs (slowly). For long videos on
a small card use `sana_wm_core.model.enable_block_offload(net, device, blocks_resident=k)` instead, which
streams one block at a time with prefetching.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

import comfy.model_management as mm
import comfy.model_patcher


def wrap_for_comfy(model: torch.nn.Module, load_device: Optional[torch.device] = None,
                   offload_device: Optional[torch.device] = None) -> "comfy.model_patcher.ModelPatcher":
    """A ModelPatcher around the DiT so `comfy.model_management.load_models_gpu([patcher])` manages it.

    load_device / offload_device default to ComfyUI's torch device and its diffusion-model offload device.
    The patcher's `.model` is the DiT itself (same forward contract)."""
    load_device = load_device if load_device is not None else mm.get_torch_device()
    offload_device = offload_device if offload_device is not None else mm.unet_offload_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device,
                                            size=mm.module_size(model))


def comfy_block_callback(progress: Optional[Callable[[int, int], None]] = None) -> Callable[[int, int], None]:
    """A per-block callback for `model.set_block_callback`: raises ComfyUI's InterruptProcessingException
    as soon as the user cancels (checked before every block), then calls `progress(block, num_blocks)`."""

    def callback(block: int, num_blocks: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        if progress is not None:
            progress(block, num_blocks)

    return callback
