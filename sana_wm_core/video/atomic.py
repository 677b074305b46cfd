"""The one write-then-rename rule for every file this pack outputs (mp4, camera JSON, previews, chunks).

A file is written under a hidden temporary name in its final folder and renamed into place (`os.replace`,
atomic on one filesystem) only once it is complete and flushed to disk. A crash, a kill or a failed flush
therefore never leaves a file under a final name that is not whole. Temporary names carry the writer's
PID, so the next save in the same folder can delete the leftovers of dead processes (and its own
abandoned ones) without touching a temporary file another live server is still writing.

    with atomic_output(folder / "clip_00001_.mp4") as tmp:
        write_the_file(tmp)          # any writer that takes a path
    # here the final name exists and is complete; on an exception nothing carries it
"""
from __future__ import annotations

import os
import re
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL_TAG = ".partial"
_PARTIAL_RE = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.partial(\.[^.]*)?$")
_open_here: set[str] = set()      # temporaries this process is writing right now
_lock = threading.Lock()


def partial_path(final: str | Path) -> Path:
    """A fresh hidden temporary name beside `final`, keeping its suffix (writers pick formats by it)."""
    final = Path(final)
    return final.with_name(f".{final.stem}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_TAG}{final.suffix}")


def is_partial(path: str | Path) -> bool:
    return bool(_PARTIAL_RE.match(Path(path).name))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, owned by someone else
        return True
    return True


def clean_partials(folder: str | Path) -> list[Path]:
    """Deletes the temporaries in `folder` left by dead processes or abandoned by this one; returns them."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    me = os.getpid()
    for p in entries:
        m = _PARTIAL_RE.match(p.name)
        if not m:
            continue
        pid = int(m.group(1))
        with _lock:
            busy = str(p) in _open_here
        if busy or (pid != me and _pid_alive(pid)):
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A temporary beside `final`; `commit()` flushes and renames it into place, `discard()` deletes it."""

    def __init__(self, final: str | Path):
        self.final = Path(final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        clean_partials(self.final.parent)
        self.temp = partial_path(self.final)
        with _lock:
            _open_here.add(str(self.temp))
        self.done = False

    def commit(self, final: str | Path | None = None) -> Path:
        """Renames the temporary into place: `final` (same folder; e.g. an interrupted stream's partial name)
        instead of the name it was opened for, when given."""
        if self.done:
            raise RuntimeError(f"{self.final} was already committed or discarded")
        if not self.temp.is_file():
            raise FileNotFoundError(f"nothing was written to the temporary file for {self.final}")
        if final is not None:
            if Path(final).parent.resolve() != self.final.parent.resolve():
                raise ValueError(f"{final} must be in the temporary file's folder {self.final.parent}")
            self.final = Path(final)
        _fsync(self.temp)
        os.replace(self.temp, self.final)
        try:
            _fsync(self.final.parent)
        except OSError:  # some filesystems refuse directory fsync; the rename itself is still atomic
            pass
        self._release()
        return self.final

    def discard(self) -> None:
        if self.done:
            return
        self.temp.unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        self.done = True
        with _lock:
            _open_here.discard(str(self.temp))


@contextmanager
def atomic_output(final: str | Path) -> Iterator[Path]:
    """Yields the temporary path to write; renames it to `final` on success, deletes it on any error."""
    f = AtomicFile(final)
    try:
        yield f.temp
    except BaseException:
        f.discard()
        raise
    try:
        f.commit()
    except BaseException:
        f.discard()
        raise


def write_bytes_atomic(final: str | Path, data: bytes) -> Path:
    with atomic_output(final) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return Path(final)


def write_text_atomic(final: str | Path, text: str) -> Path:
    return write_bytes_atomic(final, text.encode("utf-8"))
