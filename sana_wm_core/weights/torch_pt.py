"""PyTorch `.pt` checkpoints (SANA-WM_streaming's `sana_dit/model.pt`): read without running code, and
converted once to a memory-mapped `.safetensors`.

A `.pt` file is a pickle; unpickling arbitrary objects can execute code. It is only ever read with
`torch.load(weights_only=True, mmap=True)`, PyTorch's restricted unpickler (tensors, dicts, numbers,
strings). A file that needs anything else is refused with `UnsafeCheckpointError`, which says how to convert
it where the file is trusted. The release's training checkpoint also holds the critic and the optimizer
state; the conversion keeps the generator's weights only (`model.convert.unwrap_state_dict`), writes them
tensor by tensor (no second copy of the model in RAM) next to the `.pt`, or under the cache folder
(`SANA_WM_CACHE_DIR`, default `~/.cache/sana_wm`) when that folder is read-only, and records the `.pt`'s
size and mtime, so a replaced `.pt` is converted again.

CLI: python -m sana_wm_core.weights.torch_pt PATH.pt [--out FILE] [--trust-pickle]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

log = logging.getLogger("sana_wm")

__all__ = ["PT_SUFFIXES", "UnsafeCheckpointError", "load_pt_state_dict", "find_converted", "convert_pt",
           "as_safetensors", "cache_dir"]

PT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_META_SOURCE = "sana_wm_converted_from"
_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
           torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2"}


class UnsafeCheckpointError(ValueError):
    """A `.pt` whose pickle holds more than tensors and plain containers (reading it could run code)."""


def cache_dir() -> Path:
    """Where conversions go when the checkpoint's own folder is read-only."""
    return Path(os.environ.get("SANA_WM_CACHE_DIR") or Path.home() / ".cache" / "sana_wm")


def _refusal(path: Path, exc: BaseException) -> UnsafeCheckpointError:
    dst = path.with_suffix(".safetensors")
    return UnsafeCheckpointError(
        f"{path} was refused: reading it needs arbitrary unpickling (it stores Python objects besides tensors), "
        f"which can run code from the file. Only checkpoints PyTorch's safe loader reads "
        f"(torch.load(weights_only=True)) are opened. If you trust this file, convert it once: "
        f"`python -m sana_wm_core.weights.torch_pt --trust-pickle \"{path}\"` writes {dst} (memory-mapped "
        f"safetensors, the generator weights only) and the loaders use that from then on. "
        f"(safe loader: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    if trust_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        try:
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError as exc:                     # a legacy (non-zip) file cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, exc) from None
    except (EOFError, RuntimeError, ValueError) as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise _refusal(path, exc) from None
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}); an "
                         "interrupted download? fetch it again") from None


def load_pt_state_dict(path: os.PathLike | str, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The model weights of a `.pt` (the "generator" of a training checkpoint, prefixes stripped), tensors
    memory-mapped where the file allows. UnsafeCheckpointError for a file that needs arbitrary unpickling
    (unless `trust_pickle`, which only the CLI sets on a person's say-so)."""
    from ..model.convert import unwrap_state_dict

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    obj = _torch_load(path, trust_pickle)
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    sd = {k: v for k, v in unwrap_state_dict(obj).items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise ValueError(f"{path} holds no tensors at its top level or under 'generator' / 'state_dict'")
    return sd


def _stamp(path: Path) -> str:
    st = path.stat()
    return json.dumps({"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def _candidates(path: Path) -> list[Path]:
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    return [path.with_suffix(".safetensors"), cache_dir() / "converted" / key / (path.stem + ".safetensors")]


def _is_fresh(candidate: Path, stamp: str) -> bool:
    if not candidate.is_file():
        return False
    from .safetensors_file import check_safetensors

    try:
        meta = check_safetensors(candidate).get("__metadata__") or {}
    except ValueError:
        return False
    return meta.get(_META_SOURCE) == stamp


def find_converted(path: os.PathLike | str) -> Optional[Path]:
    """The up-to-date conversion of this `.pt` (next to it, else in the cache folder), or None."""
    path = Path(path)
    stamp = _stamp(path)
    return next((c for c in _candidates(path) if _is_fresh(c, stamp)), None)


def _write_safetensors(sd: Mapping[str, torch.Tensor], out: Path, metadata: dict[str, str]) -> None:
    """A safetensors file written one tensor at a time (each tensor is copied once, briefly)."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    items = sorted(sd.items())
    for k, t in items:
        if t.dtype not in _DTYPES:
            raise ValueError(f"tensor {k!r} has dtype {t.dtype}, which safetensors cannot store")
        n = t.numel() * t.element_size()
        header[k] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(out, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little"))
        fh.write(raw)
        for _, t in items:
            flat = t.detach().contiguous().reshape(-1)
            if flat.numel():
                fh.write(memoryview(flat.view(torch.uint8).numpy()))
        fh.flush()
        os.fsync(fh.fileno())


def convert_pt(path: os.PathLike | str, *, out: os.PathLike | str | None = None,
               trust_pickle: bool = False) -> Path:
    """Write the `.pt`'s weights as safetensors (next to it; the cache folder when that is read-only; or
    `out`) through a temporary file renamed at the end; returns the file written."""
    path = Path(path)
    sd = load_pt_state_dict(path, trust_pickle=trust_pickle)
    meta = {_META_SOURCE: _stamp(path), "format": "pt"}
    targets = [Path(out)] if out is not None else _candidates(path)
    last: Optional[OSError] = None
    for target in targets:
        tmp = target.with_name(target.name + ".partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_safetensors(sd, tmp, meta)
            os.replace(tmp, target)
        except OSError as exc:                          # read-only folder, full disk: try the next place
            last = exc
            tmp.unlink(missing_ok=True)
            continue
        log.info("SANA-WM: converted %s -> %s (%d tensors); later loads memory-map it", path, target, len(sd))
        return target
    raise ValueError(f"could not write a safetensors conversion of {path} (tried {', '.join(map(str, targets))}): "
                     f"{last}; free disk space or set SANA_WM_CACHE_DIR to a writable folder")


def as_safetensors(path: os.PathLike | str) -> Path:
    """`path` itself unless it is a `.pt`; for a `.pt`, its conversion (made now, once, if missing or stale)."""
    path = Path(path)
    if path.suffix.lower() not in PT_SUFFIXES:
        return path
    return find_converted(path) or convert_pt(path)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sana_wm_core.weights.torch_pt",
                                     description="Convert a PyTorch .pt checkpoint to safetensors (generator "
                                                 "weights only), read with PyTorch's safe loader.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="output file (default: next to the .pt)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow full unpickling: ONLY for a file from a source you trust (it can run code)")
    args = parser.parse_args(argv)
    try:
        out = convert_pt(args.path, out=args.out, trust_pickle=args.trust_pickle)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
