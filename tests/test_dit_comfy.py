"""nodes/comfy_model.py against the real ComfyUI 0.3.75 model management (in-process, CPU)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from dit_oracle import inputs, make_pair, run_ours

REPO = Path(__file__).resolve().parents[1]
COMFY = REPO / ".venv" / "ComfyUI"


@pytest.fixture(scope="module")
def comfy_glue():
    if not (COMFY / "comfy").is_dir():
        pytest.skip("ComfyUI runtime not installed (.venv/ComfyUI)")
    sys.path.insert(0, str(COMFY))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management as mm

    spec = importlib.util.spec_from_file_location("sanawm_comfy_model", REPO / "nodes" / "comfy_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod, mm
    mm.interrupt_current_processing(False)


def test_model_management_places_and_frees_the_dit(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    base = run_ours(model, kw)
    patcher = glue.wrap_for_comfy(model, torch.device("cpu"), torch.device("cpu"))
    assert patcher.model is model and patcher.model_size() > 0
    assert patcher.model_dtype() == torch.float32
    mm.load_models_gpu([patcher])
    assert any(lm.model is patcher for lm in mm.current_loaded_models)
    assert torch.equal(run_ours(patcher.model, kw), base)
    mm.unload_all_models()
    assert not any(lm.model is patcher for lm in mm.current_loaded_models)


def test_interrupt_is_checked_before_every_block(comfy_glue):
    glue, mm = comfy_glue
    model, _ = make_pair(0)
    kw = inputs(model.config, B=1, F=3)
    seen = []
    model.set_block_callback(glue.comfy_block_callback(lambda i, n: seen.append(i)))
    run_ours(model, kw)
    assert seen == [0, 1, 2, 3]
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run_ours(model, kw)
    finally:
        mm.interrupt_current_processing(False)
