"""Loading a checkpoint must not need twice its size in RAM (the real DiT is 10 GB in fp32).

Measured on a ~250 MB original-layout checkpoint in a clean subprocess: anonymous resident memory
(`RssAnon`: the file's mmap'd pages are page cache, not held memory) is sampled while `load_transformer`
runs. The naive path (read the whole state dict, then copy it into the model) runs after it in the same
process as a control, so the measurement is shown to see the 2x it guards against.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import torch
from safetensors.torch import save_file
from sana_wm_core.model import load_transformer
from sana_wm_core.model.config import SanaWMConfig
from sana_wm_core.model.convert import diffusers_to_original
from sana_wm_core.model.transformer import SanaWMTransformer

def anon() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")

def peak_during(fn):
    base, peak, stop = anon(), [0], threading.Event()
    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], anon()); time.sleep(0.002)
    t = threading.Thread(target=poll); t.start()
    try:
        out = fn()
    finally:
        stop.set(); t.join()
    return out, max(peak[0], anon()) - base

path, mode = sys.argv[2], sys.argv[3]
cfg = SanaWMConfig(num_layers=8, hidden_size=640, num_attention_heads=5, linear_head_dim=128, caption_channels=256,
                   in_channels=16, chunk_plucker_post_attn_blocks=8)
if mode == "write":
    model = SanaWMTransformer(cfg)
    sd = {k: v.detach().contiguous() for k, v in diffusers_to_original(model.state_dict()).items()}
    save_file(sd, path)
    report = {"file_bytes": sum(v.numel() * v.element_size() for v in sd.values())}
elif mode == "naive":  # read the whole file into memory, then copy it into a model: two copies
    from safetensors.torch import load
    from sana_wm_core.model.convert import original_to_diffusers
    def naive():
        state = load(open(path, "rb").read())
        model = SanaWMTransformer(cfg)
        model.load_state_dict(original_to_diffusers(state))
        return model
    report = {mode: peak_during(naive)[1]}
else:
    heads = {"num_attention_heads": cfg.num_attention_heads}      # a bare file of an unreleased size
    report = {mode: peak_during(lambda: load_transformer(path, dtype=None if mode == "fp32" else mode,
                                                         overrides=heads))[1]}
print("MEM" + json.dumps(report))
'''


@pytest.fixture(scope="module")
def memory_report(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("dit_mem")
    (d / "measure.py").write_text(SCRIPT)
    report = {}
    for mode in ("write", "fp32", "bf16", "naive"):  # one clean process each: no allocator leftovers
        proc = subprocess.run([sys.executable, str(d / "measure.py"), str(ROOT), str(d / "dit.safetensors"), mode],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        report.update(json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("MEM")][-1][3:]))
    return report


def test_fp32_load_holds_about_one_copy(memory_report):
    size = memory_report["file_bytes"]
    assert size > 150e6  # big enough that allocator noise does not decide the result
    assert memory_report["fp32"] < 1.25 * size, memory_report


def test_bf16_load_holds_about_half(memory_report):
    assert memory_report["bf16"] < 0.75 * memory_report["file_bytes"], memory_report


def test_the_measurement_sees_a_naive_double_copy(memory_report):
    assert memory_report["naive"] > 1.6 * memory_report["file_bytes"], memory_report
