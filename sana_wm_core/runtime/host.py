"""The host protocol: the one way the engine reports progress and learns that the user cancelled.

ComfyUI implements it once (`nodes/host.py`); scripts and tests use `NULL_HOST` or `CallbackHost`.
Every long loop in the core (Stage-1 steps and DiT blocks, refiner chunks, VAE decode chunks, intrinsics
frames, weight loading) takes a `host` and calls:

- `host.check_interrupt()` before each unit of work (a DiT block, a step, a chunk); it raises the host's
  own exception to stop, so a cancel lands within one unit;
- `host.progress(done, total, preview)` after each unit; `preview` is None or a zero-argument callable
  returning an (H, W, 3) uint8 image, so a host that shows no previews never pays for one.
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol, runtime_checkable

import numpy as np

Preview = Callable[[], np.ndarray]


@runtime_checkable
class Host(Protocol):
    def progress(self, done: int, total: int, preview: Optional[Preview] = None) -> None: ...

    def check_interrupt(self) -> None: ...


class NullHost:
    """Reports nothing and never interrupts."""

    def progress(self, done: int, total: int, preview: Optional[Preview] = None) -> None:
        return None

    def check_interrupt(self) -> None:
        return None


NULL_HOST = NullHost()


class Interrupted(RuntimeError):
    """Raised by `CallbackHost` when its interrupt predicate returns True."""


class CallbackHost:
    """Adapts plain callables to the protocol: `on_progress(done, total, preview)` and an interrupt check
    that either raises itself or returns True to stop (then `error` is raised)."""

    def __init__(self, on_progress: Optional[Callable[[int, int, Optional[Preview]], None]] = None,
                 interrupt: Optional[Callable[[], "bool | None"]] = None,
                 error: type[BaseException] = Interrupted) -> None:
        self._on_progress, self._interrupt, self._error = on_progress, interrupt, error

    def progress(self, done: int, total: int, preview: Optional[Preview] = None) -> None:
        if self._on_progress is not None:
            self._on_progress(done, total, preview)

    def check_interrupt(self) -> None:
        if self._interrupt is not None and self._interrupt():
            raise self._error("interrupted")


def host_or_null(host: Optional[Host]) -> Host:
    return NULL_HOST if host is None else host
