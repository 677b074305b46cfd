"""Files and references a prompt can name are refused early and clearly (no server here; the same probes
over HTTP are in tests/test_prompt_guard_server.py).

* a .npy whose header declares terabytes, is truncated or holds objects: refused by its header;
* a camera JSON with NaN fps or a 0-degree field of view: refused at load, naming the range;
* a truncated or corrupt .safetensors: the error names the file and what is wrong;
* `path_or_hub_id`: hub ids and the model folders only, judged by the string (no filesystem probing).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sana_wm_core.camera import action_string_to_c2w, load_intrinsics_file, load_trajectory
from sana_wm_core.camera.intrinsics import fov_to_pixels
from sana_wm_core.weights import check_model_reference
from sana_wm_core.weights.safetensors_file import check_safetensors, open_safetensors


def _npy_header_only(path: Path, shape: tuple, descr: str = "<f8") -> Path:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (118 - len(header)) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    return path


def test_npy_declaring_terabytes_is_refused_by_its_header(tmp_path):
    f = _npy_header_only(tmp_path / "tb.npy", (10 ** 11, 4, 4))
    with pytest.raises(ValueError, match=r"tb\.npy: its header declares a \(100000000000, 4, 4\) float64 array"):
        load_trajectory(f)
    with pytest.raises(ValueError, match="refused before reading"):
        load_intrinsics_file(_npy_header_only(tmp_path / "k.npy", (10 ** 12, 4)))


def test_truncated_and_object_npy_are_named(tmp_path):
    good = tmp_path / "cam.npy"
    np.save(good, action_string_to_c2w("w-9"))
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"cut\.npy: truncated: its header declares 1280 bytes of data but the "
                                         r"file holds 1180"):
        load_trajectory(cut)
    assert load_trajectory(good).num_frames == 10
    with pytest.raises(ValueError, match="holds <U1 values"):
        load_trajectory(_npy_header_only(tmp_path / "s.npy", (2,), "<U1"))


def _camera_json(tmp_path: Path, **fields) -> Path:
    f = tmp_path / "cam.json"
    f.write_text(json.dumps({"c2w": action_string_to_c2w("w-8").tolist(), **fields}))
    return f


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), 0, -3, 1000, "16", [16]])
def test_camera_json_fps_is_checked_at_load(tmp_path, fps):
    with pytest.raises(ValueError, match=r"cam\.json: 'fps' must be a") as err:
        load_trajectory(_camera_json(tmp_path, fps=fps))
    assert "(0, 240]" in str(err.value) or "got" in str(err.value)
    assert load_trajectory(_camera_json(tmp_path, fps=24)).fps == 24.0


@pytest.mark.parametrize("fov", [0, 180, -5, float("nan"), "60", None])
def test_camera_json_fov_gives_the_valid_range(tmp_path, fov):
    intr = {"fov_deg": fov} if fov is not None else {"fov_deg": 60, "fov_y_deg": 0}
    with pytest.raises(ValueError, match="must be strictly between 0 and 180 degrees.*SANA-WM expects 25-120"):
        load_trajectory(_camera_json(tmp_path, intrinsics=intr))
    cam = load_trajectory(_camera_json(tmp_path, intrinsics={"fov_deg": 70}))
    assert cam.intrinsics.fov_deg == 70.0 and cam.intrinsics.source == "file:cam.json"


def test_fov_to_pixels_never_divides_by_zero():
    with pytest.raises(ValueError, match="fov_deg must be strictly between 0 and 180 degrees"):
        fov_to_pixels(0.0, None, (1280, 704))
    assert fov_to_pixels(90.0, None, (1280, 704))[0] == pytest.approx(640.0)


@pytest.fixture()
def weights(tmp_path) -> Path:
    f = tmp_path / "model.safetensors"
    save_file({"a": torch.ones(64, 64), "b": torch.zeros(8)}, str(f))
    return f


def test_truncated_safetensors_names_the_file(weights):
    data = weights.read_bytes()
    weights.write_bytes(data[:-1000])
    with pytest.raises(ValueError, match=rf"{weights}: truncated: its header places tensor data up to byte "
                                         r"16416 but the file holds 15416 bytes"):
        open_safetensors(weights)
    weights.write_bytes(data[:20])
    with pytest.raises(ValueError, match=rf"{weights}: truncated: its header needs \d+ bytes"):
        check_safetensors(weights)
    weights.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="fewer than the 8-byte header length"):
        check_safetensors(weights)


def test_corrupt_safetensors_names_the_file(weights):
    data = bytearray(weights.read_bytes())
    data[12:16] = b"\xff\xfe{]"
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{weights}: corrupt: its header is not valid JSON"):
        check_safetensors(weights)
    weights.write_bytes(b"PK\x03\x04" + b"\x00" * 64)          # a zip (.pt) renamed to .safetensors
    with pytest.raises(ValueError, match="not a safetensors file: a zip archive"):
        check_safetensors(weights)
    weights.write_bytes((10 ** 12).to_bytes(8, "little") + b'{"a": 1}')
    with pytest.raises(ValueError, match=r"not a safetensors file: its first 8 bytes declare a 1000000000000-byte"):
        check_safetensors(weights)


def test_dit_loader_reports_the_truncated_file(weights):
    from sana_wm_core.model import load_transformer

    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ValueError, match=rf"{weights}: truncated"):
        load_transformer(weights)


def test_intact_safetensors_still_open(weights):
    with open_safetensors(weights) as f:
        assert sorted(f.keys()) == ["a", "b"] and f.get_tensor("a").shape == (64, 64)


def test_model_references_are_hub_ids_or_inside_the_model_folders(tmp_path):
    models = tmp_path / "models"
    roots = [models, models / "sana_wm"]
    ok = ["", "  ", "SANA-WM_bidirectional", "Efficient-Large-Model/SANA-WM_bidirectional",
          "hf://Efficient-Large-Model/SANA-WM_bidirectional/refiner", "my folder/sub",
          str(models / "sana_wm" / "mine"), str(models)]
    for value in ok:
        assert check_model_reference(value, roots) == value.strip()
    existing, missing = "/etc", "/no/such/dir/anywhere"
    messages = []
    for value in (existing, missing, "/etc/passwd", "../../etc", "~/.ssh", "a/../../b", str(tmp_path),
                  str(models) + "_other/x", "C:\\Windows", "x\0y"):
        with pytest.raises(ValueError, match="is not allowed: give a hub id") as err:
            check_model_reference(value, roots)
        messages.append(str(err.value).replace(repr(value.strip()[:200]), "<v>"))
    # the same answer whether or not the path exists: nothing about the server's files leaks
    assert messages[0] == messages[1]
