"""Finding checkpoints: a local path, a folder under ComfyUI's model folders, or the Hugging Face Hub.

The order is fixed: (a) an explicit path that exists, (b) the name under each search dir (the ComfyUI
model folders a node passes in), (c) a download from `hub_repo` into the first search dir, so the next
run finds it locally. When none works, `WeightsNotFoundError` says every place that was tried and how
to get the files (hub repo, `huggingface-cli download` command, ComfyUI folder). Offline mode
(`HF_HUB_OFFLINE=1`) never touches the network; without network the answer comes at once (`hub.py`), and a
download lands in a temporary folder that is moved into place only when complete.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

from .hub import download_atomically, download_blocker
from .known import KNOWN_WEIGHTS, KnownWeight, known_for_repo

__all__ = ["WeightsNotFoundError", "locate_repo", "locate_file", "hub_offline", "check_model_reference",
           "KNOWN_WEIGHTS", "KnownWeight"]

# progress(done_bytes, total_bytes), or a tqdm class used as is.
ProgressFn = Callable[[int, int], None]
Progress = Union[ProgressFn, type, None]
PathLike = Union[str, os.PathLike]


class WeightsNotFoundError(FileNotFoundError):
    """Weights that are neither on disk nor downloadable; `.searched` lists the places tried."""

    def __init__(self, message: str, *, searched: Sequence[str] = (), hub_repo: str | None = None) -> None:
        super().__init__(message)
        self.searched = list(searched)
        self.hub_repo = hub_repo

    def __str__(self) -> str:  # FileNotFoundError would otherwise print only the first arg's repr
        return str(self.args[0])


def hub_offline() -> bool:
    """True when hub access is switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now, not at import)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(var)
        if value is not None and value.strip():
            return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    try:
        from huggingface_hub import constants
    except ImportError:
        return True
    return bool(constants.HF_HUB_OFFLINE)


def _split_hf_url(name: str) -> tuple[str | None, str]:
    """`hf://owner/repo/sub/path` -> ("owner/repo", "sub/path"); anything else -> (None, "")."""
    if not name.startswith("hf://"):
        return None, ""
    parts = [p for p in name[len("hf://"):].split("/") if p]
    if len(parts) < 2:
        raise ValueError(f"{name!r} is not a hub address: expected hf://owner/repo[/path]")
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:])


def _is_explicit_path(name: str) -> bool:
    return os.path.isabs(os.path.expanduser(name)) or name.startswith(("./", "../", "~", ".\\", "..\\"))


_HUB_ID = re.compile(r"^(hf://)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9_.-]+)*$")
_NAME_PART = re.compile(r"^[A-Za-z0-9_.@+ -]+$")


def check_model_reference(value: str, roots: Sequence[PathLike], *, label: str = "path_or_hub_id") -> str:
    """A weights reference a prompt may use: empty, a hub id (`owner/repo`, `hf://owner/repo[/sub]`), a
    folder name under the model folders, or a path inside one of `roots` (ComfyUI's model folders).

    Anything else (an absolute path elsewhere, `..`, `~`, odd characters) is refused by the string alone,
    before the filesystem is touched, with the same message whether or not it exists: a prompt cannot use
    this input to learn what is on the server. Returns the value stripped.
    """
    if not isinstance(value, str):
        raise ValueError(f"{label} must be text, got {type(value).__name__}")
    name = value.strip()
    if not name:
        return name
    fix = (f"{label} {name[:200]!r} is not allowed: give a hub id such as "
           "Efficient-Large-Model/SANA-WM_bidirectional, a folder name under ComfyUI's model folders, or a "
           "path inside them (add other folders with extra_model_paths.yaml)")
    if "\0" in name or "\n" in name or len(name) > 1024:
        raise ValueError(fix)
    if os.path.isabs(name) or name.startswith("~"):
        full = os.path.normpath(name)
        for root in roots:
            r = os.path.normpath(os.path.abspath(os.fspath(root)))
            if full == r or full.startswith(r.rstrip(os.sep) + os.sep):
                return name
        raise ValueError(fix)
    if _HUB_ID.match(name) and ".." not in name.split("/"):
        return name
    parts = name.replace("\\", "/").split("/")
    if all(p not in ("", ".", "..") and _NAME_PART.match(p) for p in parts):
        return name
    raise ValueError(fix)


def _missing(folder: Path, required: Iterable[str]) -> list[str]:
    return [r for r in required if not (folder / r).exists()]


def _tqdm_forwarder(progress: ProgressFn) -> type:
    """A silent tqdm class whose byte-unit bars report (done, total) to `progress`.

    huggingface_hub drives several byte bars for one download (network transfer, bytes written); the
    largest values of the open bars are reported, which rise monotonically to the total.
    """
    from tqdm.std import tqdm

    class _Null:
        def write(self, _text: str) -> None:
            pass

        def flush(self) -> None:
            pass

    seen: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    class _Forwarding(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["file"] = _Null()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            result = super().update(n)
            if self.unit == "B":
                with lock:
                    seen[id(self)] = (int(self.n), int(self.total or 0))
                    done = max(v[0] for v in seen.values())
                    total = max(v[1] for v in seen.values())
                progress(done, max(total, done))
            return result

    return _Forwarding


def _tqdm_class(progress: Progress):
    if progress is None:
        return None
    if isinstance(progress, type):
        return progress
    return _tqdm_forwarder(progress)


def _how_to_get(hub_repo: str | None, dest: str, patterns: Sequence[str] | None) -> list[str]:
    lines: list[str] = []
    known = known_for_repo(hub_repo) if hub_repo else []
    if hub_repo:
        include = (" --include " + " ".join(f'"{p}"' for p in patterns)) if patterns else ""
        lines.append(f"How to get it: download the Hugging Face Hub repo {hub_repo}")
        lines.append(f'  huggingface-cli download {hub_repo}{include} --local-dir "{dest}"')
        lines.append(f'  (newer CLI, same thing: hf download {hub_repo}{include} --local-dir "{dest}")')
        lines.append("or let the loader download it: switch off offline mode (unset HF_HUB_OFFLINE) "
                     "and allow downloads.")
    else:
        lines.append(f"How to get it: no Hugging Face repo is known for it; copy the files to {dest}")
    if known:
        folder = f"ComfyUI/models/{known[0].models_folder}"
        here = "" if dest == folder else f" (here: {dest})"
        lines.append(f"ComfyUI folder: {folder}/{here}, laid out as in the hub repo. {hub_repo} holds:")
        lines.extend(f"  - {e.name}: {e.what} ({e.size})" for e in known)
    else:
        lines.append(f"ComfyUI folder: {dest}")
    return lines


def _raise_not_found(label: str, searched: list[str], hub_repo: str | None, dest: str,
                     patterns: Sequence[str] | None, cause: BaseException | None = None):
    message = "\n".join([f"SANA-WM weights not found: {label}", "Looked in:",
                         *(f"  - {s}" for s in searched), *_how_to_get(hub_repo, dest, patterns)])
    error = WeightsNotFoundError(message, searched=searched, hub_repo=hub_repo)
    if cause is not None:
        raise error from cause
    raise error


def _search_local(name: str, search_dirs: Sequence[PathLike], required: Sequence[str], alt_names: Sequence[str],
                  searched: list[str]) -> tuple[Path | None, Path | None]:
    """Try the explicit path, then every search dir; return (complete match, incomplete folder found)."""
    partial = None
    candidates: list[Path] = []
    if _is_explicit_path(name):
        candidates.append(Path(os.path.expanduser(name)))
    else:
        for d in search_dirs:
            for rel in dict.fromkeys([name, *alt_names]):
                if rel:
                    candidates.append(Path(d) / rel)
    for cand in dict.fromkeys(candidates):
        if not cand.exists():
            searched.append(f"{cand} (does not exist)")
            continue
        missing = _missing(cand, required) if cand.is_dir() else []
        if not missing:
            return cand.resolve(), partial
        searched.append(f"{cand} (exists but lacks {', '.join(missing)})")
        partial = partial or cand
    if not candidates:
        searched.append("no local folders to search (no search dirs given)")
    return None, partial


def _suggested_folder(hub_repo: str | None, name: str) -> str:
    """Where the files belong when no search dir was given: the known ComfyUI folder, else a placeholder."""
    known = known_for_repo(hub_repo) if hub_repo else []
    if known:
        return f"ComfyUI/models/{known[0].models_folder}"
    return f"ComfyUI/models/<folder>/{name}"


def _check_hub_allowed(label: str, searched: list[str], hub_repo: str | None, dest: str,
                       patterns: Sequence[str] | None, allow_download: bool) -> None:
    """Raise the not-found error when the hub cannot be used: no repo known, downloads off, or offline."""
    if hub_repo is None:
        _raise_not_found(label, searched, None, dest, patterns)
    if not allow_download:
        searched.append(f"Hugging Face Hub {hub_repo}: not tried, downloads are switched off")
        _raise_not_found(label, searched, hub_repo, dest, patterns)
    blocker = "offline mode (HF_HUB_OFFLINE is set)" if hub_offline() else download_blocker()
    if blocker:   # answered at once: no hub retries when they cannot succeed
        searched.append(f"Hugging Face Hub {hub_repo}: not tried, {blocker}")
        _raise_not_found(label, searched, hub_repo, dest, patterns)


def locate_repo(name_or_path: PathLike, *, search_dirs: Sequence[PathLike], hub_repo: str | None = None,
                allow_download: bool = True, progress: Progress = None,
                allow_patterns: Sequence[str] | None = None, required: Sequence[str] = (),
                download_dir: PathLike | None = None) -> Path:
    """Find a checkpoint folder (or file) and return its local path.

    `name_or_path`: an explicit path (absolute, ./, ../ or ~), a name relative to the search dirs
    (e.g. "SANA-WM_bidirectional"), the hub repo id itself (its folder is the repo's name), or
    hf://owner/repo[/sub/path]. `required`: relative paths a folder
    must contain to count (an incomplete folder is completed from the hub when allowed).
    `allow_patterns`: what to download from `hub_repo` (None = the whole repo). `progress`:
    progress(done_bytes, total_bytes) or a tqdm class. Raises WeightsNotFoundError.
    """
    name = os.fspath(name_or_path).strip()
    if not name:
        raise ValueError("name_or_path is empty: give a folder name, a path or hf://owner/repo")
    patterns = list(allow_patterns) if allow_patterns else None
    url_repo, sub = _split_hf_url(name)
    hub_repo = hub_repo or url_repo
    repo_name = hub_repo.split("/")[-1] if hub_repo else ""
    if url_repo:  # hf://owner/repo/sub: look for <repo>/<sub> locally, download only <sub>
        local_rel, alts = (f"{repo_name}/{sub}" if sub else repo_name), []
        if patterns is None and sub:
            patterns = [sub, f"{sub}/*"]
    elif hub_repo and name == hub_repo:  # "owner/repo" given as the name: the folder is called "repo"
        local_rel, alts = repo_name, [name]
    else:
        local_rel, alts = name, ([repo_name] if repo_name and repo_name != name else [])
    searched: list[str] = []
    found, partial = _search_local(local_rel, search_dirs, required, alts, searched)
    if found is not None:
        return found

    if download_dir is not None:
        root = Path(download_dir)
    elif _is_explicit_path(name):
        root = Path(os.path.expanduser(name))
    elif partial is not None and not url_repo:
        root = partial
    elif search_dirs:
        root = Path(search_dirs[0]) / (repo_name if url_repo else local_rel)
    else:
        root = None  # the Hugging Face cache
    dest = str(root) if root is not None else _suggested_folder(hub_repo, repo_name or name)
    label = f"{name!r}" + (f" (hub repo {hub_repo})" if hub_repo else "")
    _check_hub_allowed(label, searched, hub_repo, dest, patterns, allow_download)
    try:
        from huggingface_hub import snapshot_download

        def fetch(local_dir: Path | None) -> Path:
            return Path(snapshot_download(repo_id=hub_repo, allow_patterns=patterns,
                                          local_dir=None if local_dir is None else str(local_dir),
                                          tqdm_class=_tqdm_class(progress)))

        got = fetch(None) if root is None else download_atomically(root, fetch)
    except Exception as exc:  # network, auth, missing repo: all end in the same advice
        searched.append(f"Hugging Face Hub {hub_repo}: download failed ({type(exc).__name__}: {exc})")
        _raise_not_found(label, searched, hub_repo, dest, patterns, exc)
    result = got / sub if sub else got
    missing = _missing(result, required) if result.is_dir() else ([] if result.exists() else [sub])
    if missing:
        searched.append(f"Hugging Face Hub {hub_repo}: downloaded to {got} but it lacks {', '.join(missing)}")
        _raise_not_found(label, searched, hub_repo, dest, patterns)
    return result


def locate_file(relpath: str, *, search_dirs: Sequence[PathLike], hub_repo: str | None = None,
                allow_download: bool = True, progress: Progress = None,
                download_dir: PathLike | None = None) -> Path:
    """Find one file by its path relative to the search dirs (e.g. "SANA-WM_bidirectional/dit/x.safetensors").

    With `hub_repo`, the part after the repo's folder name is the file's path inside the repo, and
    only that file is downloaded (hf_hub_download) into `<first search dir>/<repo folder>/`.
    """
    relpath = os.fspath(relpath).strip().replace("\\", "/")
    if not relpath:
        raise ValueError("relpath is empty: give the file's path relative to the model folders")
    searched: list[str] = []
    found, _ = _search_local(relpath, search_dirs, (), (), searched)
    if found is not None and found.is_file():
        return found
    repo_name = hub_repo.split("/")[-1] if hub_repo else ""
    head, _, tail = relpath.partition("/")
    in_repo = tail if head == repo_name and tail else relpath
    if download_dir is not None:
        root = Path(download_dir)
    elif search_dirs and hub_repo:
        root = Path(search_dirs[0]) / repo_name
    else:
        root = None  # the Hugging Face cache
    dest = str(root) if root is not None else _suggested_folder(hub_repo, repo_name or relpath)
    label = f"file {relpath!r}" + (f" (hub repo {hub_repo}, file {in_repo})" if hub_repo else "")
    _check_hub_allowed(label, searched, hub_repo, dest, [in_repo], allow_download)
    try:
        from huggingface_hub import hf_hub_download

        def fetch(local_dir: Path | None) -> Path:
            return Path(hf_hub_download(repo_id=hub_repo, filename=in_repo,
                                        local_dir=None if local_dir is None else str(local_dir),
                                        tqdm_class=_tqdm_class(progress)))

        return fetch(None) if root is None else download_atomically(root, fetch)
    except Exception as exc:
        searched.append(f"Hugging Face Hub {hub_repo}: download failed ({type(exc).__name__}: {exc})")
        _raise_not_found(label, searched, hub_repo, dest, [in_repo], exc)
