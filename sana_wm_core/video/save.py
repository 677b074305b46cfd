"""Save one generated clip: streamed frames -> mp4 (optionally with the HUD) + the camera path as JSON.

The JSON beside `name.mp4` is `name.camera.json`: the user's camera path (loadable again as a trajectory)
plus the poses of exactly the frames in the video, so a clip and its camera can be matched later.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..camera.types import CameraPath
from ..latent import SanaWMLatent
from .atomic import AtomicFile
from .overlay import OverlayPainter
from .writer import Mp4Writer, VideoInfo


def camera_json(camera: Any, video_c2w: np.ndarray | None, info: VideoInfo, extra: dict | None = None) -> dict:
    """The JSON document saved beside a video."""
    if camera is not None:
        from ..camera.preview import camera_path_json

        doc = camera_path_json(camera)
    else:
        doc = {"format": "sana_wm_camera/1"}
    doc["video"] = {"file": info.path.name, "frames": info.frames, "fps": info.fps,
                    "width": info.width, "height": info.height}
    if video_c2w is not None:
        doc["video"]["c2w"] = np.asarray(video_c2w, dtype=np.float64).tolist()
    if extra:
        doc["generation"] = extra
    return doc


def save_clip(chunks: Iterable[np.ndarray], mp4_path: str | Path, *, fps: float = 16.0, camera: Any = None,
              video_c2w: np.ndarray | None = None, n_frames: int | None = None, overlay: bool = False,
              first_pose: int = 0, extra: dict | None = None, crf: int = 25) -> tuple[VideoInfo, Path]:
    """Write the mp4 (chunks streamed through the optional overlay) and its camera JSON; returns both paths.

    `first_pose` is the index in the camera path of the first video frame (1 after the refiner's sink).
    """
    mp4_path = Path(mp4_path)
    if overlay:
        if camera is None and video_c2w is None:
            raise ValueError("overlay needs the camera path: connect the camera, or switch the overlay off")
        n = n_frames if n_frames is not None else (len(video_c2w) if video_c2w is not None else camera.num_frames)
        if camera is not None:
            painter = OverlayPainter.for_camera(camera, n, first_pose=first_pose)
        else:
            painter = OverlayPainter.for_camera(None, n, c2w=video_c2w)
        chunks = (painter(c) for c in chunks)
    json_path = mp4_path.with_suffix(".camera.json")
    writer = Mp4Writer(mp4_path, fps, crf=crf)
    try:
        for chunk in chunks:
            writer.write(chunk)
        info = writer.finish()
        doc = json.dumps(camera_json(camera, video_c2w, info, extra), indent=1)
        side = AtomicFile(json_path)
        try:
            side.temp.write_text(doc)
            side.commit()  # the JSON first: an mp4 under its final name always has its JSON beside it
        except BaseException:
            side.discard()
            raise
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return info, json_path


def save_latent_clip(chunks: Iterable[np.ndarray], mp4_path: str | Path, latent: SanaWMLatent, *,
                     camera: CameraPath | None = None, fps: float = 0.0, overlay: bool = False,
                     crf: int = 25) -> tuple[VideoInfo, Path]:
    """`save_clip` for the decoded frames of `latent` (`decode_latent_frames`): the poses, frame count and
    first pose of the frames it keeps, and its prompt, stage and settings in the JSON. `camera` and `fps` are
    the node's optional inputs (`SanaWMLatent.with_clip_inputs`: they win over what the latent carries; `fps`
    <= 0 means the camera's, else the latent's). A latent with no known fps is refused before any frame is read."""
    latent = latent.with_clip_inputs(camera, fps)
    rate = latent.require_fps()
    return save_clip(chunks, mp4_path, fps=rate, camera=latent.camera, video_c2w=latent.output_c2w(),
                     n_frames=latent.output_frames, overlay=overlay, first_pose=latent.drop_first_frames,
                     crf=crf, extra={"prompt": latent.prompt, "stage": latent.stage, **latent.generation})
