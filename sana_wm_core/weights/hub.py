"""Talking to the Hugging Face Hub: can a download happen at all, and downloads that leave nothing half-done.

`download_blocker()` answers at once why no download can happen (offline mode set, or no network), so a
missing checkpoint is reported in well under a second instead of after huggingface_hub's retries.
`download_atomically()` fetches into a hidden temporary folder beside the destination and moves the files
into place only when every one arrived: a failed or cancelled download leaves no lock file, no `.incomplete`
blob and no half-filled model folder behind.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

__all__ = ["download_blocker", "download_atomically", "choice_for_download", "parse_choice", "DOWNLOAD_MARK"]

PROBE_TIMEOUT_S = 1.5       # one TCP connect to the hub; a machine without network answers at once
_PROBE_CACHE_S = 20.0       # one answer for all loaders of a prompt
_probe: dict[str, tuple[float, str | None]] = {}
DOWNLOAD_MARK = " (download from "


def choice_for_download(name: str, hub_repo: str) -> str:
    """The dropdown entry that stands for weights not on disk: `name (download from owner/repo)`."""
    return f"{name}{DOWNLOAD_MARK}{hub_repo})"


def parse_choice(choice: str) -> tuple[str, str | None]:
    """`name (download from owner/repo)` -> (name, "owner/repo"); any other value -> (value, None)."""
    if choice.endswith(")") and DOWNLOAD_MARK in choice:
        name, _, repo = choice[:-1].rpartition(DOWNLOAD_MARK)
        if name and repo.count("/") == 1:
            return name, repo
    return choice, None


def _offline_variable() -> str | None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = (os.environ.get(var) or "").strip()
        if value.upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{var}={value}"
    return None


def _endpoint() -> str:
    try:
        from huggingface_hub import constants
        return constants.ENDPOINT
    except ImportError:
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def download_blocker() -> str | None:
    """None when a hub download may be tried, else why not: offline mode (which variable), no network
    (the host cannot be reached), or huggingface_hub missing. Cached for a few seconds."""
    offline = _offline_variable()
    if offline:
        return f"offline mode ({offline} is set): unset it to allow downloads"
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return "huggingface_hub is not installed: pip install huggingface_hub"
    url = _endpoint()
    now = time.monotonic()
    cached = _probe.get(url)
    if cached and now - cached[0] < _PROBE_CACHE_S:
        return cached[1]
    parts = urlparse(url)
    host, port = parts.hostname or "huggingface.co", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
        answer = None
    except OSError as exc:
        answer = f"no network: {host}:{port} cannot be reached ({type(exc).__name__}: {exc})"
    _probe[url] = (now, answer)
    return answer


def _merge(src: Path, dest: Path) -> None:
    """Moves every file of `src` into `dest` (same relative paths), replacing what is there."""
    for folder, _dirs, files in os.walk(src):
        rel = Path(folder).relative_to(src)
        if rel.parts[:1] == (".cache",):   # huggingface_hub's locks and metadata of the temporary folder
            continue
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            os.replace(Path(folder) / name, dest / rel / name)


def download_atomically(dest: Path, fetch: Callable[[Path], Path]) -> Path:
    """Runs `fetch(tmp_dir)` (a huggingface_hub download with `local_dir=tmp_dir`, returning what it wrote)
    in a hidden folder beside `dest`, then moves the result into `dest`; returns the same path under `dest`.
    On any error the temporary folder is removed and `dest` is left as it was."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.download-", dir=dest.parent))
    try:
        got = Path(fetch(tmp))
        rel = got.resolve().relative_to(tmp.resolve())
        _merge(tmp, dest)
        return dest / rel
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
