"""ComfyUI glue for the Stage-1 DiT: hand it to ComfyUI's model management.

Typical use in a loader / sampler node (nodes/models.py, nodes/sampling.py):

    from .comfy_model import wrap_for_comfy, load_for_sampling
    from .host import ComfyHost

    model = load_transformer(path, dtype="bf16")                      # lives on the CPU
    patcher = wrap_for_comfy(model)                                     # offload="none" (Dynamic VRAM aware)
    patcher = wrap_for_comfy(model, blocks_resident=4)                  # offload="block"
    ...                                                                 # the loader returns it as a core MODEL
    net = load_for_sampling(patcher, latent.shape, batch=2)           # comfy.model_management.load_models_gpu
    v = net(x, t, text, mask, camera, plucker, host=ComfyHost())      # Cancel stops within one block

ComfyUI then places the weights on the GPU, keeps them there between prompts and frees them under memory
pressure (or on POST /free) like any other model. When only part of the model fits, ComfyUI leaves some
layers on the offload device; every layer of the DiT casts its weights to the activation's device on use,
so that still runs (slowly). For long videos on a small card the block-offload patcher streams the blocks
instead (see `BlockOffloadPatcher`).
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch

import comfy.model_management as mm
import comfy.model_patcher
from comfy.patcher_extension import CallbacksMP

from ..sana_wm_core.model.offload import DEFAULT_BLOCKS_RESIDENT, disable_block_offload, enable_block_offload
from .comfy_ops import core_patcher_class

log = logging.getLogger("sana_wm")
STREAM_BUFFERS = 2          # the block being computed + the one being prefetched


def _log_detach(patcher: "comfy.model_patcher.ModelPatcher", unpatch_all: bool) -> None:
    if unpatch_all:       # False = ComfyUI re-registering a loaded model: nothing moves
        log.info("SANA-WM: Stage-1 DiT released to %s by ComfyUI model management", patcher.offload_device)


def _dit(model: torch.nn.Module) -> torch.nn.Module:
    """The DiT itself: the model, or the one inside a core `SanaWMBaseModel` (`nodes/native_model.py`)."""
    return getattr(model, "dit", model)


def _param_device(model: torch.nn.Module, default: torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    return default


class BlockOffloadPatcher(comfy.model_patcher.ModelPatcher):
    """A ModelPatcher for a DiT whose blocks stream from CPU RAM (`enable_block_offload`); `model` is the DiT
    or the core `SanaWMBaseModel` around it (the loader's MODEL), the blocks being the DiT's either way.

    ComfyUI must not place the whole model: its loader would move every block onto the GPU (defeating the
    streaming) or leave arbitrary layers behind. So this patcher reports only the device footprint of the
    streamed layout (non-block weights + `blocks_resident` blocks + two streaming buffers) and, when ComfyUI
    loads it, installs the block offloader instead of moving modules; when ComfyUI frees it (memory pressure,
    another model, POST /free) the offloader is removed and everything returns to the CPU. Fewer blocks stay
    resident when ComfyUI's weight budget is smaller. The offload device is always the CPU.

    The constructor and `clone` forward whatever else ComfyUI's `ModelPatcher` passes, so one class works on the
    pinned 0.3.75 (`clone()` with no arguments) and on current releases, whose `clone(disable_dynamic=...,
    model_override=..., force_deepcopy=...)` builds the copy as `cls(model, load_device, offload_device, size,
    weight_inplace_update=..., fast_disk=...)`.
    """

    def __init__(self, model: torch.nn.Module, load_device: torch.device, offload_device: torch.device,
                 size: int = 0, *args, blocks_resident: int = DEFAULT_BLOCKS_RESIDENT, **kwargs) -> None:
        sizes = [mm.module_size(b) for b in _dit(model).blocks]
        self.num_blocks = len(sizes)
        self.block_bytes = max(sizes, default=0)
        self.base_bytes = mm.module_size(model) - sum(sizes)
        self.blocks_resident = max(0, min(int(blocks_resident), len(sizes)))
        super().__init__(model, load_device, offload_device, size or self.footprint(self.blocks_resident),
                         *args, **kwargs)

    def footprint(self, resident: int) -> int:
        """Device bytes of the weights with `resident` blocks kept on the device."""
        streamed = min(STREAM_BUFFERS, self.num_blocks - resident)
        return self.base_bytes + (resident + streamed) * self.block_bytes

    def clone(self, *args, **kwargs) -> "comfy.model_patcher.ModelPatcher":
        n = super().clone(*args, **kwargs)
        if isinstance(n, BlockOffloadPatcher):    # current ComfyUI may return a plain ModelPatcher delegate
            n.blocks_resident = min(self.blocks_resident, n.num_blocks)
        return n

    def _resident_within(self, budget: float) -> int:
        if budget <= 0 or budget >= self.footprint(self.blocks_resident):
            return self.blocks_resident
        k = int((budget - self.footprint(0)) // max(self.block_bytes, 1))
        return max(0, min(k, self.blocks_resident))

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False) -> int:
        """ComfyUI's load hook: install the offloader on `device_to` (no-op when already streaming there)."""
        device_to = torch.device(device_to)
        dit = _dit(self.model)
        off = dit.offloader
        if off is not None and off.device == device_to:
            return 0
        if off is not None:
            self._release()
        before = self.loaded_size()
        # extra_memory 0 (or ComfyUI's 1e32) = no limit; 0.1 = NO_VRAM state -> stream every block
        k = self._resident_within(0 if extra_memory >= 1e30 else extra_memory)
        enable_block_offload(dit, device_to, blocks_resident=k)
        self.model.device = dit.device = device_to
        self.model.model_loaded_weight_memory = self.footprint(k)
        log.info("SANA-WM: block offload on %s, %d of %d blocks resident, %.1f MB on the device",
                 device_to, k, len(dit.blocks), self.footprint(k) / 2 ** 20)
        return self.loaded_size() - before

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False) -> int:
        """ComfyUI asks for memory back: the streamed layout is released as a whole."""
        freed = self.loaded_size()
        self._release()
        return freed

    def detach(self, unpatch_all: bool = True) -> torch.nn.Module:
        """unpatch_all=False (ComfyUI re-registering the same model, or the patcher being collected) keeps the
        streamed layout where it is, as ModelPatcher keeps its weights; True moves everything to the CPU."""
        self.eject_model()
        self.model_patches_to(self.offload_device)
        if unpatch_all:
            self._release()
        for callback in self.get_all_callbacks(CallbacksMP.ON_DETACH):
            callback(self, unpatch_all)
        return self.model

    def _release(self) -> None:
        dit = _dit(self.model)
        disable_block_offload(dit, self.offload_device)
        self.model.to(self.offload_device)
        self.model.device = dit.device = self.offload_device
        self.model.model_loaded_weight_memory = 0


def _follow_placement(patcher: "comfy.model_patcher.ModelPatcher", device_to, *args) -> None:
    """ON_LOAD: the DiT computes where ComfyUI placed it. The pack's own samplers take the compute device from
    `dit.device` (`sana_wm_core.sampling.model_dtype_device`); the loader set it to where the weights were read,
    and under Dynamic VRAM (or a partial load) the weights themselves stay on the offload device."""
    if device_to is not None:
        _dit(patcher.model).device = torch.device(device_to)


def _back_to_offload(patcher: "comfy.model_patcher.ModelPatcher", unpatch_all: bool) -> None:
    if unpatch_all:
        _dit(patcher.model).device = patcher.offload_device


def wrap_for_comfy(model: torch.nn.Module, load_device: Optional[torch.device] = None,
                   offload_device: Optional[torch.device] = None, *,
                   blocks_resident: Optional[int] = None, dynamic: bool = True) -> "comfy.model_patcher.ModelPatcher":
    """A ModelPatcher around the DiT so `comfy.model_management.load_models_gpu([patcher])` manages it.

    load_device / offload_device default to ComfyUI's torch device and its diffusion-model offload device.
    blocks_resident=None gives the patcher ComfyUI gives its own diffusion models (`core_patcher_class`:
    `ModelPatcherDynamic` under current ComfyUI's Dynamic VRAM, which itself falls back to the classic
    `ModelPatcher` for a CPU load device; the classic one on 0.3.75 or with `--disable-dynamic-vram`), which
    places the whole model, partially when it does not fit; dynamic=False forces the classic one (what
    comfy/sd.py's loaders do for `disable_dynamic=True`). An int gives a `BlockOffloadPatcher` (offload
    device: the CPU). The patcher's `.model` is the given model. Detaching logs one line, so the server log
    shows when ComfyUI frees it.
    """
    load_device = load_device if load_device is not None else mm.get_torch_device()
    if blocks_resident is not None:
        patcher = BlockOffloadPatcher(model, load_device, torch.device("cpu"), blocks_resident=blocks_resident)
    else:
        offload_device = offload_device if offload_device is not None else mm.unet_offload_device()
        if getattr(model, "device", None) is None:      # where the weights are now (ComfyUI's BaseModel does this)
            model.device = _param_device(model, offload_device)
        cls = core_patcher_class() if dynamic else comfy.model_patcher.ModelPatcher
        patcher = cls(model, load_device=load_device, offload_device=offload_device, size=mm.module_size(model))
        patcher.add_callback(CallbacksMP.ON_LOAD, _follow_placement)
        patcher.add_callback(CallbacksMP.ON_DETACH, _back_to_offload)
    patcher.add_callback(CallbacksMP.ON_DETACH, _log_detach)
    return patcher


def load_for_sampling(patcher: "comfy.model_patcher.ModelPatcher", latent_shape: Sequence[int],
                      batch: int = 1) -> torch.nn.Module:
    """`load_models_gpu` with the DiT's activation estimate for a `batch`-row forward (CFG runs 2 rows in one
    call, which cannot be split, so the minimum equals the requirement); returns the DiT, ready to run."""
    shape = [int(batch)] + [int(s) for s in list(latent_shape)[1:]]
    need = int(patcher.memory_required(shape)) if hasattr(patcher.model, "memory_required") else 0
    mm.load_models_gpu([patcher], memory_required=need, minimum_memory_required=need)
    return patcher.model

