"""Save a clip that is still being made: frame chunks are encoded as they arrive, and a run that stops early
(cancelled, or failed mid-way) keeps what was made as a complete, playable file under a name that says it is
partial, with its camera JSON beside it; the exception then goes on to the caller.

Both names are given by the caller (e.g. `clip_00001_.mp4` and `clip_00001_partial.mp4`); the file only ever
carries one of them once it is whole (write, then rename: `atomic.py`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from .atomic import AtomicFile
from .save import camera_json
from .writer import Mp4Writer, VideoInfo

log = logging.getLogger("sana_wm")


@dataclasses.dataclass(frozen=True)
class SavedStream:
    info: VideoInfo            # info.path is the name the file got
    json_path: Path
    partial: bool


def _commit_json(path: Path, doc: dict) -> None:
    side = AtomicFile(path)
    try:
        side.temp.write_text(json.dumps(doc, indent=1))
        side.commit()
    except BaseException:
        side.discard()
        raise


def save_stream_clip(chunks: Iterable[np.ndarray], mp4_path: str | Path, partial_path: str | Path, *,
                     fps: float = 16.0, camera: Any = None,
                     video_c2w: Callable[[int], Optional[np.ndarray]] = lambda n: None,
                     extra: Optional[dict] = None, crf: int = 25,
                     on_partial: Optional[Callable[[SavedStream], None]] = None) -> SavedStream:
    """Encode `chunks` (uint8 (f,H,W,3)) into `mp4_path` (+ `.camera.json`). `video_c2w(n)` gives the poses of the
    first n frames. If the iteration raises after at least one frame, the frames so far are flushed into
    `partial_path` (+ its JSON, `generation.partial: true`), `on_partial` is told, and the exception is re-raised;
    with no frame yet, nothing is left behind."""
    mp4_path, partial_path = Path(mp4_path), Path(partial_path)
    writer = Mp4Writer(mp4_path, fps, crf=crf)
    try:
        for chunk in chunks:
            writer.write(chunk)
    except BaseException as exc:
        if writer.frames == 0:
            writer.abort()
            raise
        try:
            saved = _finish(writer, partial_path, camera, video_c2w, {**(extra or {}), "partial": True}, partial=True)
        except Exception:   # noqa: BLE001 - the original exception is what the caller must see
            log.exception("SANA-WM: could not keep the partial video %s", partial_path)
            writer.abort()
            raise exc
        log.warning("SANA-WM: stopped after %d frames (%s); kept them as %s", saved.info.frames,
                    type(exc).__name__, saved.info.path)
        if on_partial is not None:
            on_partial(saved)
        raise
    return _finish(writer, mp4_path, camera, video_c2w, extra, partial=False)


def _finish(writer: Mp4Writer, path: Path, camera, video_c2w, extra, *, partial: bool) -> SavedStream:
    try:
        info = dataclasses.replace(writer.finish(), path=path)
        json_path = path.with_suffix(".camera.json")
        _commit_json(json_path, camera_json(camera, video_c2w(info.frames), info, extra))  # JSON first: an mp4
        writer.commit(path if partial else None)                                            # always has one
    except BaseException:
        writer.abort()
        raise
    return SavedStream(info=info, json_path=json_path, partial=partial)
