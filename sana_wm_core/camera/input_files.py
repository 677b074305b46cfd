"""Camera files in ComfyUI's input folder: the one rule for listing them and for turning a widget value
or a query parameter into a path, shared by the `SanaWMLoadCamera` node and the preview route.

The input folder is passed in (this package never imports ComfyUI). A name is a path relative to that
folder with '/' separators, optionally with ComfyUI's " [input]" annotation; anything that resolves
outside the folder (``..``, absolute paths, symlinks pointing away, " [output]"/" [temp]") is refused,
so a prompt or a preview request cannot read arbitrary files on the server.
"""
from __future__ import annotations

import os

from .trajectory import TRAJECTORY_SUFFIXES

_OTHER_FOLDERS = ("[output]", "[temp]")


def _suffix_list() -> str:
    return ", ".join(TRAJECTORY_SUFFIXES[:-1]) + " or " + TRAJECTORY_SUFFIXES[-1]


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def list_camera_files(input_dir: str | os.PathLike) -> list[str]:
    """Every camera file (`TRAJECTORY_SUFFIXES`) under `input_dir` (hidden folders skipped), as sorted relative names
    with '/' separators: the values the node's `file` combo offers. A missing folder lists nothing."""
    root = os.path.realpath(input_dir)
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or not name.lower().endswith(TRAJECTORY_SUFFIXES):
                continue
            full = os.path.join(here, name)
            if _inside(os.path.realpath(full), root) and os.path.isfile(full):
                found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(found)


def resolve_camera_file(name: str, input_dir: str | os.PathLike) -> str:
    """The real path of the camera file `name` inside `input_dir`.

    Raises ValueError for an empty or non-text name, a name that leaves the input folder, or a file that
    is not there; each message names the file and says what to do.
    """
    if not isinstance(name, str):
        raise ValueError(f"file must be a camera file name (text), got {type(name).__name__}")
    if not name.strip():
        raise ValueError(f"file is empty: pick a camera file ({_suffix_list()}) from ComfyUI's input folder")
    if "\0" in name:
        raise ValueError(f"camera file {name!r} contains a NUL character; pick a file from the list")
    root = os.path.realpath(input_dir)
    rel = name
    if rel.endswith(_OTHER_FOLDERS):
        raise ValueError(f"camera file {name!r} is outside ComfyUI's input folder: camera files are read from "
                         "input/ only")
    if rel.endswith("[input]"):
        rel = rel[: -len("[input]")].rstrip()
    path = os.path.realpath(os.path.join(root, rel))
    if not _inside(path, root):
        raise ValueError(f"camera file {name!r} is outside ComfyUI's input folder")
    if not os.path.isfile(path):
        raise ValueError(f"camera file {name!r} was not found in ComfyUI's input folder ({root}); put a "
                         f"{'/'.join(TRAJECTORY_SUFFIXES)} trajectory there or upload it with the node's upload button")
    return path
