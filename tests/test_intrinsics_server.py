"""SanaWMEstimateIntrinsics inside a real ComfyUI server, on the tiny Pi3X, feeding the camera nodes."""
from __future__ import annotations

import re

import pytest
from PIL import Image

from scripts.comfy_api import ComfyError

from sana_wm_core.pi3x import intrinsics_from_35mm
from sana_wm_core.testing.tiny_pi3x import TINY_FILENAME, build_tiny_pi3x

pytestmark = pytest.mark.server
IMAGE_NAME = "sanawm_intrinsics_exif.jpg"
SIZE = (320, 180)


@pytest.fixture(scope="module")
def server(comfy_server):
    """The session server with the tiny Pi3X in models/pi3x and an input photo carrying EXIF (28 mm equiv.)."""
    pi3x = comfy_server.base / "models" / "pi3x" / TINY_FILENAME
    if not pi3x.exists():  # tiny_models builds it when the weights builder knows Pi3X; else write it here
        build_tiny_pi3x(comfy_server.base / "models")
    img = Image.new("RGB", SIZE, (90, 140, 200))
    for x in range(0, SIZE[0], 16):
        for y in range(SIZE[1]):
            img.putpixel((x, y), (255, 255, 255))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 28
    img.save(comfy_server.base / "input" / IMAGE_NAME, "JPEG", exif=exif.tobytes(), quality=95)
    return comfy_server


def _estimate(method: str, *, fov: float = 60.0, fallback: bool = False, exif: str = "none",
              ckpt: str = TINY_FILENAME) -> dict:
    """Estimate Intrinsics is not an output node (its result feeds a camera node, and a bad video branch must
    refuse the whole prompt): core PreviewAny on its output is what makes it run here; its text still comes
    back as the node's own ui."""
    return {
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        "1": {"class_type": "LoadImage", "inputs": {"image": IMAGE_NAME}},
        "2": {"class_type": "SanaWMEstimateIntrinsics",
              "inputs": {"image": ["1", 0], "method": method, "fov_deg": fov, "fallback": fallback,
                         "pi3x_checkpoint": ckpt, "exif_image": exif}},
    }


def _text(result) -> str:
    return result.outputs["2"]["text"][0]


def test_node_is_registered_with_checkpoint_and_file_choices(server, comfy):
    spec = comfy.object_info("SanaWMEstimateIntrinsics")["SanaWMEstimateIntrinsics"]
    ckpts, exif = comfy.choices("SanaWMEstimateIntrinsics", "pi3x_checkpoint"), comfy.choices(
        "SanaWMEstimateIntrinsics", "exif_image")
    assert "exif_image" in spec["input"]["optional"]
    assert TINY_FILENAME in ckpts and "yyfz233/Pi3X (download)" in ckpts
    assert comfy.choices("SanaWMEstimateIntrinsics", "method") == ["pi3x", "exif", "fov"]
    assert IMAGE_NAME in exif and exif[0] == "none"
    assert spec["output"] == ["SANAWM_INTRINSICS"] and spec["output_node"] is False


def test_pi3x_estimate_runs_in_a_workflow(server, comfy):
    res = comfy.run(_estimate("pi3x"))
    assert res.status == "success", res.error
    text = _text(res)
    assert "source: pi3x" in text and f"for {SIZE[0]}x{SIZE[1]}" in text
    fov_x, fov_y = (float(v) for v in re.search(r"horizontal ([\d.]+) deg, vertical ([\d.]+) deg", text).groups())
    assert 25 < fov_y < fov_x < 120


def test_exif_estimate_uses_the_input_file(server, comfy):
    res = comfy.run(_estimate("exif", exif=IMAGE_NAME))
    assert res.status == "success", res.error
    fx = intrinsics_from_35mm(28.0, SIZE)[0]
    assert "source: exif" in _text(res) and f"fx = {fx:.2f} px" in _text(res)
    res = comfy.run(_estimate("exif", fov=55.0, fallback=True))  # no file: falls back to the typed FOV
    assert res.status == "success", res.error
    assert "source: fov" in _text(res) and "exif skipped" in _text(res)


def test_bad_fov_fails_clearly_and_server_recovers(server, comfy):
    res = comfy.run(_estimate("fov", fov=10.0))
    assert res.status == "error"
    assert "fov_deg must be strictly between 25 and 120" in res.error["exception_message"]
    assert comfy.run(_estimate("fov", fov=70.0)).status == "success"


def test_missing_pi3x_weights_offline_fall_back_to_fov(server, comfy):
    res = comfy.run(_estimate("pi3x", ckpt="yyfz233/Pi3X (download)", fov=65.0, fallback=True))
    assert res.status == "success", res.error
    assert "source: fov" in _text(res) and "HF_HUB_OFFLINE" in _text(res)
    # without the fallback the missing file is found before Run (nodes/weights_check.py): refused at POST /prompt
    with pytest.raises(ComfyError) as err:
        comfy.run(_estimate("pi3x", ckpt="yyfz233/Pi3X (download)"))
    message = err.value.details["error"]["message"]
    assert err.value.status == 400 and "weights this workflow needs are missing" in message
    assert "model.safetensors" in message and "models/pi3x/Pi3X/" in message and "HF_HUB_OFFLINE" in message


def test_estimate_feeds_camera_nodes(server, comfy):
    info = comfy.object_info()
    if not {"SanaWMCameraFromActions", "SanaWMCameraPreview"} <= set(info):
        pytest.skip("camera nodes not in this build")
    wf = _estimate("pi3x")
    wf["3"] = {"class_type": "SanaWMCameraFromActions",
               "inputs": {"action": "w-8,dw-8", "translation_speed": 0.05, "rotation_speed_deg": 1.2,
                          "mapping": "classic", "num_frames": 0, "fps": 16.0, "intrinsics": ["2", 0]}}
    wf["4"] = {"class_type": "SanaWMCameraPreview", "inputs": {"camera": ["3", 0], "every_n": 8}}
    wf["9"]["inputs"]["source"] = ["4", 1]          # the preview passes the camera on to the output node
    res = comfy.run(wf)
    assert res.status == "success", res.error
    assert "source: pi3x" in _text(res)
    assert res.outputs["4"]["images"], res.outputs
