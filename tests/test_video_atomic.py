"""The write-then-rename rule (sana_wm_core/video/atomic.py) on real files, without a server.

The kill -9 of a real server mid-save is in tests/test_batch_server.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sana_wm_core.video import (AtomicFile, Mp4Writer, atomic_output, clean_partials, is_partial, probe_mp4,
                                save_clip, write_text_atomic)

REPO = Path(__file__).resolve().parents[1]


def _frames(n: int, h: int = 32, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)


def test_final_name_appears_only_when_complete(tmp_path):
    final = tmp_path / "clip_00001_.mp4"
    w = Mp4Writer(final, 16)
    w.write(_frames(60))                          # past x264's look-ahead: packets reach the file
    temps = [p for p in tmp_path.iterdir() if is_partial(p)]
    assert not final.exists() and len(temps) == 1 and temps[0].suffix == ".mp4"
    assert temps[0].name.startswith(".")          # hidden: ComfyUI's counter and /view listings skip it
    info = w.close()
    assert final.exists() and not temps[0].exists() and info.path == final
    assert probe_mp4(final)["frames"] == 60


def test_failure_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    final = tmp_path / "doc.json"
    write_text_atomic(final, '{"v": 1}')
    with pytest.raises(RuntimeError):
        with atomic_output(final) as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise RuntimeError("flush failed")
    assert json.loads(final.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_save_clip_failure_leaves_no_final_name(tmp_path):
    def chunks():
        yield _frames(3)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError):
        save_clip(chunks(), tmp_path / "c.mp4", fps=16)
    assert list(tmp_path.iterdir()) == []
    info, js = save_clip(iter([_frames(2)]), tmp_path / "c.mp4", fps=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.camera.json", "c.mp4"]
    assert json.loads(js.read_text())["video"]["frames"] == 2 == probe_mp4(info.path)["frames"]


def test_leftovers_of_dead_processes_are_cleaned_on_the_next_save(tmp_path):
    # a real process that dies (SIGKILL) mid-write, leaving its temporary file behind
    code = ("import sys, os, signal; sys.path.insert(0, sys.argv[1]);"
            "from sana_wm_core.video import AtomicFile;"
            "f = AtomicFile(sys.argv[2]); f.temp.write_bytes(b'half'); print(f.temp, flush=True);"
            "os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code, str(REPO), str(tmp_path / "a.mp4")],
                         capture_output=True, text=True)
    assert out.returncode == -9
    dead = Path(out.stdout.strip())
    assert dead.exists() and is_partial(dead) and not (tmp_path / "a.mp4").exists()
    live = AtomicFile(tmp_path / "b.mp4")           # in progress in this (live) process: must survive
    live.temp.write_bytes(b"busy")
    write_text_atomic(tmp_path / "c.json", "{}")    # the next save in that folder cleans the dead one
    assert not dead.exists() and live.temp.exists()
    assert clean_partials(tmp_path) == []
    live.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_commit_twice_is_refused(tmp_path):
    f = AtomicFile(tmp_path / "x.bin")
    f.temp.write_bytes(b"1")
    f.commit()
    with pytest.raises(RuntimeError, match="already"):
        f.commit()
    g = AtomicFile(tmp_path / "y.bin")
    with pytest.raises(FileNotFoundError):
        g.commit()
    g.discard()
    assert os.listdir(tmp_path) == ["x.bin"]
