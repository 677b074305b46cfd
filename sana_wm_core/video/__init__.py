"""Video output: atomic files (write, then rename), streamed H.264 mp4 writing, the WASD + joystick overlay,
the camera JSON beside the file."""
from .atomic import (AtomicFile, atomic_output, clean_partials, is_partial, write_bytes_atomic,
                     write_text_atomic)
from .overlay import Motion, OverlayPainter, draw_hud, motions_from_action, motions_from_poses
from .save import save_clip, save_latent_clip
from .writer import Mp4Writer, VideoInfo, probe_mp4, write_mp4

__all__ = ["AtomicFile", "atomic_output", "clean_partials", "is_partial", "write_bytes_atomic",
           "write_text_atomic", "Motion", "OverlayPainter", "draw_hud", "motions_from_action",
           "motions_from_poses", "save_clip", "save_latent_clip", "Mp4Writer", "VideoInfo", "probe_mp4",
           "write_mp4"]
