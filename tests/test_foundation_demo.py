"""`make demo`: the main job. Offline on tiny weights it writes a playable mp4; without a GPU and without
WEIGHTS=tiny it stops at once and says how to run it."""
from __future__ import annotations

import subprocess
import sys
import time

import av
import pytest

from scripts.comfy_server import REPO

pytestmark = pytest.mark.server


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_cuda(), reason="with a GPU, make demo runs the real model")
def test_make_demo_without_gpu_says_how_to_run_it():
    t0 = time.time()
    run = subprocess.run(["make", "-s", "demo"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "make demo WEIGHTS=tiny" in run.stderr + run.stdout
    assert time.time() - t0 < 60


def test_demo_on_tiny_weights_writes_the_video(tmp_path):
    run = subprocess.run([sys.executable, "scripts/demo.py", "--weights", "tiny", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    ran = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("running ")]
    assert "running Load Image" in ran and "running SANA-WM Save Video (mp4 + camera JSON)" in ran, ran
    assert not any("SanaWM" in line or "node " in line for line in ran), ran
    videos = list(tmp_path.glob("*.mp4"))
    assert len(videos) == 1 and (tmp_path / videos[0].name.replace(".mp4", ".camera.json")).exists()
    with av.open(str(videos[0])) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and float(s.average_rate) == 16.0
        assert sum(1 for _ in c.decode(video=0)) == 32  # 33 Stage-1 frames, the refiner drops the sink frame
