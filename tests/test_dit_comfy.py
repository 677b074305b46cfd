"""nodes/comfy_model.py against the real ComfyUI 0.3.75 model management (in-process, CPU)."""
from __future__ import annotations

import copy
import sys

import pytest
import torch

from dit_oracle import inputs, make_pair, run_ours
from pack_import import COMFY, import_pack_module


@pytest.fixture(scope="module")
def comfy_glue():
    if not (COMFY / "comfy").is_dir():
        pytest.skip("ComfyUI runtime not installed (.venv/ComfyUI)")
    sys.path.insert(0, str(COMFY))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management as mm

    yield import_pack_module("comfy_model"), mm
    mm.interrupt_current_processing(False)
    mm.unload_all_models()


def _loaded(mm, patcher) -> bool:
    return any(lm.model is patcher for lm in mm.current_loaded_models)


def test_model_management_places_and_frees_the_dit(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    base = run_ours(model, kw)
    patcher = glue.wrap_for_comfy(model, torch.device("cpu"), torch.device("cpu"))
    assert patcher.model is model and patcher.model_size() > 0
    assert patcher.model_dtype() == torch.float32
    mm.load_models_gpu([patcher])
    assert _loaded(mm, patcher)
    assert torch.equal(run_ours(patcher.model, kw), base)
    mm.unload_all_models()
    assert not _loaded(mm, patcher)


def test_load_for_sampling_registers_with_the_activation_estimate(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    patcher = glue.wrap_for_comfy(model)                   # ComfyUI's own devices (--cpu: both CPU)
    assert patcher.load_device == mm.get_torch_device() and model.device == torch.device("cpu")
    shape = (1, model.config.in_channels, 3, 4, 6)
    assert model.memory_required((2,) + shape[1:]) == 2 * model.memory_required(shape) > 0
    net = glue.load_for_sampling(patcher, shape, batch=2)
    assert net is model and _loaded(mm, patcher) and patcher.loaded_size() == patcher.model_size()
    glue.load_for_sampling(patcher, shape, batch=2)        # already loaded: still one entry
    assert sum(lm.model is patcher for lm in mm.current_loaded_models) == 1
    mm.unload_all_models()
    assert not _loaded(mm, patcher) and patcher.loaded_size() == 0


def test_block_offload_patcher_streams_instead_of_placing_the_model(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    base = run_ours(model, kw)
    n = len(model.blocks)
    patcher = glue.wrap_for_comfy(model, torch.device("cpu"), blocks_resident=1)
    assert isinstance(patcher, glue.BlockOffloadPatcher) and patcher.offload_device == torch.device("cpu")
    full = mm.module_size(model)
    assert patcher.model_size() == patcher.footprint(1) < full       # ComfyUI plans for the streamed layout
    assert patcher.footprint(0) < patcher.footprint(1)
    mm.load_models_gpu([patcher], memory_required=model.memory_required((1, 16, 3, 4, 6)))
    off = model.offloader
    assert _loaded(mm, patcher) and off is not None and off.resident == 1 and sorted(off.cpu) == list(range(1, n))
    assert patcher.loaded_size() == patcher.footprint(1)
    assert torch.equal(run_ours(model, kw), base)
    mm.load_models_gpu([patcher])                          # loaded again: the offloader is kept, not rebuilt
    assert model.offloader is off
    mm.unload_all_models()
    assert model.offloader is None and not _loaded(mm, patcher) and patcher.loaded_size() == 0
    assert torch.equal(run_ours(model, kw), base)          # plain model again, same numbers


def test_block_offload_keeps_fewer_blocks_when_comfy_budget_is_small(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    patcher = glue.BlockOffloadPatcher(model, torch.device("cpu"), torch.device("cpu"), blocks_resident=2)
    assert patcher._resident_within(0) == 2 and patcher._resident_within(1e32) == 2
    assert patcher._resident_within(patcher.footprint(1) + 1) == 1
    assert patcher._resident_within(0.1) == 0              # ComfyUI's NO_VRAM budget: stream every block
    assert patcher.partially_load(torch.device("cpu"), patcher.footprint(1)) == patcher.footprint(1)
    assert model.offloader.resident == 1
    assert patcher.partially_unload(torch.device("cpu"), 1) == patcher.footprint(1)
    assert model.offloader is None and patcher.loaded_size() == 0
    assert patcher.clone().blocks_resident == 2


def test_interrupt_is_checked_before_every_block(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    seen, ran = [], []
    for i, block in enumerate(model.blocks):
        block.register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
    ComfyHost = import_pack_module("host").ComfyHost

    class Recording(ComfyHost):  # the one ComfyUI host adapter, noting which block is about to run
        def check_interrupt(self):
            seen.append(len(ran))
            super().check_interrupt()

    run_ours(model, dict(kw, host=Recording()))
    assert seen == [0, 1, 2, 3]
    ran.clear()
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run_ours(model, dict(kw, host=Recording()))
        assert ran == []  # stopped before the first block
    finally:
        mm.interrupt_current_processing(False)


def _current_comfy_model_patcher(base):
    """A stand-in for current ComfyUI's ModelPatcher (Comfy-Org/ComfyUI comfy/model_patcher.py, read at commit
    08d0e510): the constructor gained `fast_disk=False` (ModelPatcherDynamic passes it positionally, 6th), and
    `clone(disable_dynamic=False, model_override=None, force_deepcopy=False)` builds the copy as
    `self.__class__(model_override[0], load_device, offload_device, size, weight_inplace_update=..., fast_disk=...)`
    and refuses a deep copy when the loader registered no `cached_patcher_init`. Built on the pinned class, so
    everything else is the real 0.3.75 ModelPatcher."""

    class CurrentModelPatcher(base):
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False, fast_disk=False):
            super().__init__(model, load_device, offload_device, size, weight_inplace_update)
            self.fast_disk = fast_disk
            self.cached_patcher_init = None

        def is_dynamic(self):
            return False

        def get_clone_model_override(self):
            return self.model, (self.backup, self.object_patches_backup, self.pinned)

        def clone(self, disable_dynamic=False, model_override=None, force_deepcopy=False):
            if (self.is_dynamic() and disable_dynamic) or force_deepcopy:
                if model_override is None and self.cached_patcher_init is None:
                    raise RuntimeError("Cannot create non-dynamic delegate: cached_patcher_init is not initialized.")
            if model_override is None:
                model_override = self.get_clone_model_override()
            n = self.__class__(model_override[0], self.load_device, self.offload_device, self.model_size(),
                               weight_inplace_update=self.weight_inplace_update, fast_disk=self.fast_disk)
            n.patches = {k: v[:] for k, v in self.patches.items()}
            n.patches_uuid = self.patches_uuid
            n.object_patches = self.object_patches.copy()
            n.model_options = copy.deepcopy(self.model_options)
            n.parent = self
            n.backup, n.object_patches_backup, n.pinned = model_override[1]
            for kind, by_key in self.callbacks.items():
                n.callbacks[kind] = {key: fns.copy() for key, fns in by_key.items()}
            n.cached_patcher_init = self.cached_patcher_init
            return n

    return CurrentModelPatcher


def test_block_offload_patcher_forwards_current_comfyui_clone_arguments(comfy_glue):
    """ComfyUI 0.38's ModelPatcher passes fast_disk= (and callers disable_dynamic / model_override /
    force_deepcopy) through clone into the subclass constructor: the patcher forwards them and keeps its own
    state; the pinned 0.3.75 clone() with no arguments still works (the test above)."""
    glue, mm = comfy_glue
    import comfy.model_patcher
    from comfy.patcher_extension import CallbacksMP

    current = _current_comfy_model_patcher(comfy.model_patcher.ModelPatcher)

    class Patcher(glue.BlockOffloadPatcher, current):   # BlockOffloadPatcher on current ComfyUI's base
        pass

    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    base = run_ours(model, kw)
    cpu = torch.device("cpu")
    p = Patcher(model, cpu, cpu, blocks_resident=2, fast_disk=True)
    p.add_callback(CallbacksMP.ON_DETACH, glue._log_detach)
    assert p.fast_disk is True and p.blocks_resident == 2 and p.model_size() == p.footprint(2)
    assert Patcher(model, cpu, cpu, 0, False, True).fast_disk is True          # positional, as __new__ reroutes

    c = p.clone(disable_dynamic=True)
    assert type(c) is Patcher and c.model is model and c.parent is p
    assert c.fast_disk is True and c.blocks_resident == 2 and c.model_size() == p.model_size()
    assert len(c.get_all_callbacks(CallbacksMP.ON_DETACH)) == 1

    other, _ = make_pair(0)
    o = p.clone(model_override=(other, (p.backup, p.object_patches_backup, p.pinned)))
    assert type(o) is Patcher and o.model is other and o.blocks_resident == 2 and o.fast_disk is True

    with pytest.raises(RuntimeError, match="cached_patcher_init"):
        p.clone(force_deepcopy=True)

    mm.load_models_gpu([c], memory_required=model.memory_required((1, 16, 3, 4, 6)))   # the clone streams
    assert _loaded(mm, c) and model.offloader is not None and model.offloader.resident == 2
    assert torch.equal(run_ours(model, kw), base)
    mm.unload_all_models()
    assert model.offloader is None and c.loaded_size() == 0


def test_offload_none_gets_the_patcher_comfyui_gives_its_own_diffusion_models(comfy_glue, monkeypatch):
    """`wrap_for_comfy` wraps like comfy/sd.py: `CoreModelPatcher` where current ComfyUI binds it (Dynamic VRAM:
    `ModelPatcherDynamic`, here a stand-in subclass), the classic ModelPatcher on 0.3.75 (no CoreModelPatcher)
    and for dynamic=False; block offload stays the BlockOffloadPatcher. The model samples through either."""
    glue, mm = comfy_glue
    import comfy.model_patcher

    ops = import_pack_module("comfy_ops")
    cpu = torch.device("cpu")
    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    base = run_ours(model, kw)
    assert not hasattr(comfy.model_patcher, "CoreModelPatcher")          # the pinned 0.3.75
    assert ops.core_patcher_class() is comfy.model_patcher.ModelPatcher
    assert type(glue.wrap_for_comfy(model, cpu, cpu)) is comfy.model_patcher.ModelPatcher

    class StandInDynamic(comfy.model_patcher.ModelPatcher):
        pass

    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", StandInDynamic, raising=False)
    p = glue.wrap_for_comfy(model, cpu, cpu)
    assert type(p) is StandInDynamic and p.model is model and p.model_size() == mm.module_size(model)
    assert type(glue.wrap_for_comfy(model, cpu, cpu, dynamic=False)) is comfy.model_patcher.ModelPatcher
    assert type(glue.wrap_for_comfy(model, cpu, cpu, blocks_resident=2)) is glue.BlockOffloadPatcher
    mm.load_models_gpu([p])
    assert _loaded(mm, p) and torch.equal(run_ours(model, kw), base)
    mm.unload_all_models()


def test_the_dit_computes_where_comfyui_placed_it(comfy_glue):
    """The pack's samplers compute on `dit.device` (`model_dtype_device`). ComfyUI's load sets it to the device
    it placed the model on (under Dynamic VRAM the weights themselves stay on the offload device, so the first
    parameter's device would be the CPU); a full release sets it back to the offload device. The MODEL's
    `.model` is the core `SanaWMBaseModel`, whose own `device` ComfyUI updates, not the DiT's inside it."""
    glue, mm = comfy_glue
    from sana_wm_core.sampling import model_dtype_device

    cpu = torch.device("cpu")
    model, _ = make_pair(0)
    patcher = import_pack_module("native_model").wrap_as_core_model(model, 3.0, cpu, cpu)
    assert patcher.model.dit is model
    model.device = torch.device("meta")                  # stale: not where ComfyUI will place it
    mm.load_models_gpu([patcher])
    assert model.device == patcher.load_device and model_dtype_device(model)[1] == patcher.load_device
    model.device = torch.device("meta")
    mm.unload_all_models()
    assert model.device == patcher.offload_device
