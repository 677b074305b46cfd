"""Reading the numbers in camera and intrinsics files without trusting their declared sizes or values.

A `.npy` header can declare any shape (a 2-byte file may claim terabytes, and NumPy would try to allocate
them before noticing); text files can be arbitrarily long; JSON accepts `NaN` and `Infinity`. Every check
here happens before the data is read, and every message names the file and what is wrong with it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

# A 100,001-frame (F,4,4) float64 path is 12.8 MB; nothing a camera or intrinsics file holds comes near these.
MAX_NPY_DATA_BYTES = 64 * 2 ** 20
MAX_TEXT_FILE_BYTES = 128 * 2 ** 20


def check_file_size(path: Path, limit: int = MAX_TEXT_FILE_BYTES) -> None:
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{path.name}: the file is {size / 2 ** 20:.1f} MiB; camera and intrinsics files are "
                         f"at most {limit // 2 ** 20} MiB (a 100,001-frame path is about 13 MB)")


def load_npy(path: Path, limit: int = MAX_NPY_DATA_BYTES) -> np.ndarray:
    """A plain numeric `.npy`, refused by its header (declared size, dtype, truncation) before any data is read."""
    try:
        with open(path, "rb") as fh:
            major, _minor = np.lib.format.read_magic(fh)
            if major == 1:
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif major in (2, 3):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {major}")
            offset = fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ValueError(f"{path.name}: not a readable .npy file ({exc})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ValueError(f"{path.name}: not a plain numeric .npy array: it holds {dtype} values; camera and "
                         "intrinsics files hold plain numbers (float or int), not objects, strings or complex")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize if shape else dtype.itemsize
    if declared > limit:
        raise ValueError(f"{path.name}: its header declares a {shape} {dtype} array ({declared / 2 ** 20:,.1f} "
                         f"MiB); camera and intrinsics arrays are at most {limit // 2 ** 20} MiB, so the file "
                         "was refused before reading it")
    present = path.stat().st_size - offset
    if present < declared:
        raise ValueError(f"{path.name}: truncated: its header declares {declared} bytes of data but the file "
                         f"holds {present}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path.name}: not a plain numeric .npy array ({exc})") from None


def finite_number(value: Any, what: str, *, low: float | None = None, high: float | None = None,
                  strict_low: bool = False) -> float:
    """`value` as a finite float within [low, high] (or (low, high] with strict_low), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {type(value).__name__} {value!r}"[:300])
    v = float(value)
    rng = ""
    if low is not None or high is not None:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        rng = f" in {'(' if strict_low else '['}{lo}, {hi}]"
    if not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number{rng}, got {v}")
    if (low is not None and (v < low or (strict_low and v == low))) or (high is not None and v > high):
        raise ValueError(f"{what} must be a number{rng}, got {v}")
    return v
