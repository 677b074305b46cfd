"""Writes the example camera files shipped with the workflows.

`example_camera.npy`: a (321,4,4) camera-to-world path (drive forward, ease into a left turn, straighten),
rolled out with the pack's own `game` key map so its motion is smooth. `example_intrinsics.npy`: (4,)
[fx, fy, cx, cy] in pixels of `example_input.png` (1280x720) for a 60-degree horizontal field of view.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sana_wm_core.camera import action_string_to_c2w, fov_to_pixels  # noqa: E402

ACTION = "w-100,jw-60,w-60,lw-40,w-60"


def main(out_dir: Path) -> None:
    c2w = action_string_to_c2w(ACTION, translation_speed=0.05, rotation_speed_deg=1.0, mapping="game")
    assert c2w.shape == (321, 4, 4), c2w.shape
    np.save(out_dir / "example_camera.npy", c2w.astype(np.float64))
    np.save(out_dir / "example_intrinsics.npy", fov_to_pixels(60.0, None, (1280, 720)))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "workflows/assets"))
