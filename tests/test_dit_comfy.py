"""nodes/comfy_model.py against the real ComfyUI 0.3.75 model management (in-process, CPU)."""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch

from dit_oracle import inputs, make_pair, run_ours

REPO = Path(__file__).resolve().parents[1]
COMFY = REPO / ".venv" / "ComfyUI"
PACK = "sanawm_pack_under_test"


def _import_pack_module(name: str):
    """Import `nodes.<name>` as ComfyUI does (inside a package, so its relative imports resolve) without
    running the pack's __init__ (which would register every node family)."""
    for pkg, folder in ((PACK, REPO), (f"{PACK}.nodes", REPO / "nodes")):
        if pkg not in sys.modules:
            mod = types.ModuleType(pkg)
            mod.__path__ = [str(folder)]
            sys.modules[pkg] = mod
    return importlib.import_module(f"{PACK}.nodes.{name}")


@pytest.fixture(scope="module")
def comfy_glue():
    if not (COMFY / "comfy").is_dir():
        pytest.skip("ComfyUI runtime not installed (.venv/ComfyUI)")
    sys.path.insert(0, str(COMFY))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management as mm

    yield _import_pack_module("comfy_model"), mm
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
    off = model._offloader
    assert _loaded(mm, patcher) and off is not None and off.resident == 1 and sorted(off.cpu) == list(range(1, n))
    assert patcher.loaded_size() == patcher.footprint(1)
    assert torch.equal(run_ours(model, kw), base)
    mm.load_models_gpu([patcher])                          # loaded again: the offloader is kept, not rebuilt
    assert model._offloader is off
    mm.unload_all_models()
    assert model._offloader is None and not _loaded(mm, patcher) and patcher.loaded_size() == 0
    assert torch.equal(run_ours(model, kw), base)          # plain model again, same numbers


def test_block_offload_keeps_fewer_blocks_when_comfy_budget_is_small(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    patcher = glue.BlockOffloadPatcher(model, torch.device("cpu"), torch.device("cpu"), blocks_resident=2)
    assert patcher._resident_within(0) == 2 and patcher._resident_within(1e32) == 2
    assert patcher._resident_within(patcher.footprint(1) + 1) == 1
    assert patcher._resident_within(0.1) == 0              # ComfyUI's NO_VRAM budget: stream every block
    assert patcher.partially_load(torch.device("cpu"), patcher.footprint(1)) == patcher.footprint(1)
    assert model._offloader.resident == 1
    assert patcher.partially_unload(torch.device("cpu"), 1) == patcher.footprint(1)
    assert model._offloader is None and patcher.loaded_size() == 0
    assert patcher.clone().blocks_resident == 2


def test_interrupt_is_checked_before_every_block(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    seen, ran = [], []
    for i, block in enumerate(model.blocks):
        block.register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
    ComfyHost = _import_pack_module("host").ComfyHost

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
