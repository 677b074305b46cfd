"""The one ComfyUI implementation of the engine's host protocol (`sana_wm_core.runtime.host.Host`):
progress on the node's progress bar (with a latent preview when ComfyUI's preview method asks for one)
and ComfyUI's cancel, raised as its own InterruptProcessingException."""
from __future__ import annotations

from typing import Optional

import comfy.model_management as mm
import comfy.utils
from PIL import Image

from ..sana_wm_core.runtime.host import Preview


def _preview_settings() -> tuple[bool, int]:
    try:
        from comfy.cli_args import LatentPreviewMethod, args
        return args.preview_method != LatentPreviewMethod.NoPreviews, int(args.preview_size)
    except Exception:  # noqa: BLE001 - previews are optional
        return False, 512


class ComfyHost:
    """One per node execution. The progress bar is created on the first report (its total can change
    between phases, e.g. a download then the work)."""

    def __init__(self, previews: bool = True) -> None:
        wants, self._size = _preview_settings()
        self._previews = previews and wants
        self._bar: Optional[comfy.utils.ProgressBar] = None
        self._total = None

    def progress(self, done: int, total: int, preview: Optional[Preview] = None) -> None:
        total = max(int(total), 1)
        if self._bar is None or total != self._total:
            self._bar, self._total = comfy.utils.ProgressBar(total), total
        shown = None
        if preview is not None and self._previews:
            shown = ("JPEG", Image.fromarray(preview()), self._size)
        self._bar.update_absolute(min(int(done), total), total, shown)

    def check_interrupt(self) -> None:
        mm.throw_exception_if_processing_interrupted()
