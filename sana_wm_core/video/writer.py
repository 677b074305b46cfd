"""H.264 mp4 writing with PyAV, fed frame chunk by frame chunk.

The reference writes libx264 / yuv420p at crf 25 (imageio quality 5); we use the same settings, so the
file is the one the reference would write for the same pixels. Chunks are encoded as they arrive, so the
clip is never held whole, and the frame rate is stored as an exact fraction (16 fps -> 16/1). The file is
written under a temporary name and renamed into place by `close()` (`atomic.py`): a crash mid-video leaves
no unreadable file under the final name.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from .atomic import AtomicFile


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frames: int
    width: int
    height: int
    fps: float


def _rate(fps: float) -> Fraction:
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0 or fps > 240:
        raise ValueError(f"fps must be within (0, 240], got {fps}")
    return Fraction(fps).limit_denominator(1001)


class Mp4Writer:
    """`write(chunk)` takes uint8 (f,H,W,3) arrays; `close()` flushes and returns a `VideoInfo`."""

    def __init__(self, path: str | Path, fps: float = 16.0, *, crf: int = 25, preset: str = "medium",
                 codec: str = "libx264"):
        self.path = Path(path)
        self.fps = float(fps)
        self._rate = _rate(fps)
        self._opts = {"crf": str(int(crf)), "preset": preset}
        self._codec = codec
        self._container = None
        self._stream = None
        self._file: AtomicFile | None = None
        self.frames = 0
        self.size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        import av

        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
        self._file = AtomicFile(self.path)
        self._container = av.open(str(self._file.temp), mode="w", format="mp4")
        stream = self._container.add_stream(self._codec, rate=self._rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = dict(self._opts)
        self._stream = stream
        self.size = (width, height)

    def write(self, chunk: np.ndarray) -> None:
        import av

        arr = np.asarray(chunk)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (f,H,W,3), got {arr.dtype} {arr.shape}")
        h, w = arr.shape[1:3]
        if self._container is None:
            self._open(w, h)
        elif (w, h) != self.size:
            raise ValueError(f"frame size changed from {self.size} to {(w, h)} mid-video")
        for frame in arr:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
            self.frames += 1

    def finish(self) -> VideoInfo:
        """Flush the encoder and close the temporary file; `commit()` then gives it its final name."""
        if self._container is None:
            raise ValueError("no frames were written; a video needs at least one frame")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except BaseException:
            self.abort()
            raise
        return VideoInfo(self.path, self.frames, self.size[0], self.size[1], self.fps)

    def commit(self, final: str | Path | None = None) -> None:
        """Gives the finished file its name (`final` instead of `path`, same folder, when given)."""
        try:
            self._file.commit(final)
            if final is not None:
                self.path = Path(final)
        except BaseException:
            self.abort()
            raise

    def close(self) -> VideoInfo:
        """`finish()` + `commit()`: the mp4 appears under its final name complete, or not at all."""
        info = self.finish()
        self.commit()
        return info

    def abort(self) -> None:
        """Close and delete the partial file (after an error or an interrupt); the final name is untouched."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is being discarded anyway
                pass
            self._container = None
        if self._file is not None:
            self._file.discard()


def write_mp4(path: str | Path, chunks: Iterable[np.ndarray], fps: float = 16.0, **kw) -> VideoInfo:
    """Stream every chunk into an mp4; a failure mid-way leaves nothing under `path`."""
    writer = Mp4Writer(path, fps, **kw)
    try:
        for chunk in chunks:
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def probe_mp4(path: str | Path) -> dict:
    """Codec, frame count, size and fps of an mp4 (decodes every frame: exact counts)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return {"codec": s.codec_context.name, "frames": n, "width": s.codec_context.width,
                "height": s.codec_context.height, "fps": float(s.average_rate or s.base_rate),
                "pix_fmt": s.codec_context.pix_fmt}
