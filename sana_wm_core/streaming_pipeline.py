"""Chunk-by-chunk scheduling of the streaming clip's stages: one after another, or overlapped (spec §7).

A source (an iterator: Stage 1, block by block) feeds a chain of stages (refine, decode); each finished chunk is
handed to the caller in order. Three modes, chosen once by `pipeline_mode`:

- "sequential": chunk k goes through every stage, and is handed out, before the source starts chunk k+1.
- "threads": the source and each stage run in their own worker thread, joined by one-slot queues, so the source
  computes chunk k+1 while chunk k is refined, decoded and written. At most `window` chunks are in flight (from
  the source starting one to the caller asking for the next one after it; default 2: one chunk of look-ahead),
  so memory stays bounded by the stages' windows, not by the clip.
- "cuda": "threads", each worker enqueueing on its own `torch.cuda.Stream`; a hand-off carries a CUDA event that
  the receiving stream waits on (and the receiver marks the tensors as used by its stream), so the GPU runs the
  stages concurrently while the threads keep the host from serialising them.

Same bits in every mode: each stage sees the same inputs in the same order and keeps its own state; nothing else
is shared. Failures: an exception in any worker goes down the chain in order, behind the chunks finished before
it, and is raised to the caller; the workers above the failing one are halted. Closing the iterator (the
caller's own exception, a cancel, a `break`) halts every worker and joins them before it returns: no thread
outlives the iterator. A halted source stops at its next cancel check (`guard`: every DiT block for Stage 1).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch

from .runtime.host import Host

__all__ = ["MODES", "Stage", "StageSpan", "ChunkPipeline", "pipeline_mode"]

MODES = ("sequential", "threads", "cuda")
_POLL_S = 0.05          # how often a waiting worker looks at its halt flag


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the chain: `run(item) -> item`, called once per chunk, in chunk order, from one thread."""

    name: str
    run: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class StageSpan:
    """When a stage worked on a chunk (host `time.perf_counter()` seconds; on CUDA: when it was enqueued)."""

    stage: str
    index: int
    start: float
    end: float


OVERLAP_ENV = "SANA_WM_STREAM_OVERLAP"  # auto (default) / on / off: the default of `overlap=None`
_OVERLAP_VALUES = {"auto": None, "on": True, "1": True, "off": False, "0": False}


def overlap_from_env() -> Optional[bool]:
    """`SANA_WM_STREAM_OVERLAP` as an `overlap` value: the escape hatch for a GPU where the overlapped stages'
    extra working memory does not fit (off), or to force worker threads on a CPU (on)."""
    raw = os.environ.get(OVERLAP_ENV, "auto").strip().lower()
    if raw not in _OVERLAP_VALUES:
        raise ValueError(f"{OVERLAP_ENV}={raw!r}: use auto, on or off")
    return _OVERLAP_VALUES[raw]


def pipeline_mode(stage1_device: torch.device, other_devices: Iterable[torch.device] = (),
                  overlap: Optional[bool] = None) -> str:
    """The one place the schedule is decided. `overlap` None: the `SANA_WM_STREAM_OVERLAP` setting, auto by
    default: "cuda" when Stage 1 runs on CUDA and no stage uses another CUDA device, else "sequential" (CPU
    stages compete for the same cores, so overlap buys little). True: "cuda" under the same condition, else
    "threads" (worker threads without streams: testable on CPU). False: "sequential"."""
    if overlap is None:
        overlap = overlap_from_env()
    if overlap is False:
        return "sequential"
    first = torch.device(stage1_device)
    cudas = {torch.device(d) for d in (first, *other_devices) if torch.device(d).type == "cuda"}
    one_gpu = first.type == "cuda" and len(cudas) == 1 and torch.cuda.is_available()
    if one_gpu:
        return "cuda"
    return "threads" if overlap else "sequential"


class _Halted(Exception):
    """Raised inside a halted source at its next cancel check; never reaches the caller."""


@dataclasses.dataclass
class _Failed:
    exc: BaseException


_END = object()


class _Guard:
    """The source's host: its cancel checks also stop it once the pipeline halts it."""

    def __init__(self, host: Host, halt: threading.Event) -> None:
        self._host, self._halt = host, halt

    def progress(self, done, total, preview=None) -> None:
        self._host.progress(done, total, preview)

    def check_interrupt(self) -> None:
        if self._halt.is_set():
            raise _Halted()
        self._host.check_interrupt()


def _thread(name: str, fn: Callable, *args: Any) -> threading.Thread:
    """A daemon worker that runs in a copy of the caller's context variables (ComfyUI keeps the executing node
    in one), so what the stage calls sees the same context as the caller."""
    ctx = contextvars.copy_context()
    return threading.Thread(target=ctx.run, args=(fn, *args), name=f"sana-wm-stream-{name}", daemon=True)


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            yield from _tensors(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _tensors(getattr(obj, f.name))


class ChunkPipeline:
    """Runs `source` then `stages` per chunk in `mode` (see the module docstring); one `run` per pipeline.

    `device`: the CUDA device of mode "cuda". `trace`: a list that receives a `StageSpan` per source step and per
    stage call (stage names: "source" and each `Stage.name`)."""

    def __init__(self, mode: str = "sequential", *, device: Optional[torch.device] = None, window: int = 2,
                 trace: Optional[list] = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if int(window) < 1:
            raise ValueError(f"window must be >= 1 chunk in flight, got {window}")
        if mode == "cuda" and (device is None or torch.device(device).type != "cuda"):
            raise ValueError(f"mode 'cuda' needs the CUDA device the stages run on, got {device!r}")
        self.mode, self.window, self.trace = mode, int(window), trace
        self.device = torch.device(device) if device is not None else None
        self._halts: list[threading.Event] = [threading.Event()]   # [0] is the source's; stages' are added by run

    def guard(self, host: Host) -> Host:
        """The host the source must check cancel with, so a halt stops it within one of its own steps."""
        return _Guard(host, self._halts[0])

    # -- recording -------------------------------------------------------------------------------------------------
    def _span(self, stage: str, index: int, start: float) -> None:
        if self.trace is not None:
            self.trace.append(StageSpan(stage, index, start, time.perf_counter()))

    # -- sequential ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _sequential(self, source: Iterator, stages: Sequence[Stage]) -> Iterator:
        index = 0
        while True:
            t0 = time.perf_counter()
            try:
                item = next(source)
            except StopIteration:
                return
            self._span("source", index, t0)
            for st in stages:
                t0 = time.perf_counter()
                item = st.run(item)
                self._span(st.name, index, t0)
            yield item
            index += 1

    # -- overlapped ------------------------------------------------------------------------------------------------
    def run(self, source: Iterable, stages: Sequence[Stage]) -> Iterator:
        """The finished chunks in order (a generator: nothing starts before the first `next`)."""
        source = iter(source)
        if self.mode == "sequential":
            return self._sequential(source, list(stages))
        return self._overlapped(source, list(stages))

    def _overlapped(self, source: Iterator, stages: list[Stage]) -> Iterator:
        self._halts += [threading.Event() for _ in stages]
        links = [queue.Queue(maxsize=1) for _ in range(len(stages) + 1)]
        slots = threading.Semaphore(self.window)
        streams = self._streams(len(stages) + 1)
        workers = [_thread("source", self._source_worker, source, links[0], slots, streams[0])]
        for i, st in enumerate(stages, start=1):
            workers.append(_thread(st.name, self._stage_worker, i, st, links[i - 1], links[i], streams[i]))
        for w in workers:
            w.start()
        try:
            while True:
                msg = self._take_final(links[-1], workers)
                if msg is _END:
                    return
                if isinstance(msg, _Failed):
                    raise msg.exc
                item, event = msg
                self._receive(item, event, None)
                yield item
                slots.release()         # the caller is done with it: the source may start one more chunk
        finally:
            for h in self._halts:
                h.set()
            for w in workers:
                w.join()
            self._rejoin(streams)
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _take_final(self, link: queue.Queue, workers: list[threading.Thread]):
        while True:
            try:
                return link.get(timeout=_POLL_S)
            except queue.Empty:
                if not any(w.is_alive() for w in workers) and link.empty():
                    return _Failed(RuntimeError("the streaming pipeline's workers stopped without a result"))

    def _put(self, link: queue.Queue, msg: Any, i: int) -> bool:
        while not self._halts[i].is_set():
            try:
                link.put(msg, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, link: queue.Queue, i: int):
        while not self._halts[i].is_set():
            try:
                return link.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return None

    def _halt_above(self, i: int) -> None:
        for h in self._halts[:i]:
            h.set()

    def _source_worker(self, source: Iterator, out: queue.Queue, slots: threading.Semaphore, stream) -> None:
        index = 0
        try:
            with self._context(stream):
                while True:
                    while not slots.acquire(timeout=_POLL_S):
                        if self._halts[0].is_set():
                            return
                    if self._halts[0].is_set():
                        return
                    t0 = time.perf_counter()
                    try:
                        item = next(source)
                    except StopIteration:
                        self._put(out, _END, 0)
                        return
                    self._span("source", index, t0)
                    if not self._put(out, (item, self._record(stream)), 0):
                        return
                    index += 1
        except _Halted:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, in order
            self._put(out, _Failed(exc), 0)

    def _stage_worker(self, i: int, stage: Stage, inbox: queue.Queue, out: queue.Queue, stream) -> None:
        index = 0
        try:
            with self._context(stream):
                while True:
                    msg = self._get(inbox, i)
                    if msg is None:
                        return
                    if msg is _END or isinstance(msg, _Failed):
                        self._put(out, msg, i)
                        return
                    item, event = msg
                    self._receive(item, event, stream)
                    t0 = time.perf_counter()
                    result = stage.run(item)
                    self._span(stage.name, index, t0)
                    del item, msg           # hold no reference to a chunk this stage is done with
                    if not self._put(out, (result, self._record(stream)), i):
                        return
                    index += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, in order
            self._halt_above(i)
            self._put(out, _Failed(exc), i)

    # -- CUDA streams ----------------------------------------------------------------------------------------------
    def _streams(self, n: int) -> list:
        """One stream per worker, each first waiting for what the caller enqueued so far (weights, inputs)."""
        if self.mode != "cuda":
            return [None] * n
        here = torch.cuda.current_stream(self.device)
        streams = [torch.cuda.Stream(device=self.device) for _ in range(n)]
        for s in streams:
            s.wait_stream(here)
        return streams

    def _rejoin(self, streams: list) -> None:
        """The caller's stream waits for all the workers' work (later work on it sees their results)."""
        if self.mode != "cuda":
            return
        here = torch.cuda.current_stream(self.device)
        for s in streams:
            here.wait_stream(s)

    def _context(self, stream):
        """A worker's ambient state: no autograd (grad mode is per thread); on CUDA its device and stream."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        if stream is not None:
            stack.enter_context(torch.cuda.device(self.device))
            stack.enter_context(torch.cuda.stream(stream))
        return stack

    def _record(self, stream):
        if stream is None:
            return None
        event = torch.cuda.Event()
        event.record(stream)
        return event

    def _receive(self, item: Any, event, stream) -> None:
        """Make `stream` (None: the caller's current one) wait for `item` and keep its memory until it is done."""
        if event is None:
            return
        stream = stream if stream is not None else torch.cuda.current_stream(self.device)
        stream.wait_event(event)
        for t in _tensors(item):
            if t.is_cuda:
                t.record_stream(stream)
