"""Opening `.safetensors` files with errors that name the file and say what is wrong with it.

The safetensors library reports a truncated or corrupt file as e.g. "Error while deserializing header:
MetadataIncompleteBuffer", without the file's name. `check_safetensors` reads only the 8-byte length and
the JSON header, checks them against the file's real size and every tensor's byte range, and raises a
ValueError such as "model.safetensors: truncated: its header places tensor data up to byte 4096 but the
file has 1000 bytes (an interrupted download? download it again)". `open_safetensors` is `safe_open` after
that check, and is what every loader in this pack uses.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_HEADER_BYTES = 100 * 2 ** 20      # the library's own limit
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
                "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_AGAIN = "(an interrupted download or copy? fetch the file again)"


def check_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed header of a well-formed safetensors file; ValueError naming the file otherwise."""
    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError(f"{name}: not a safetensors file: it has {size} bytes, fewer than the 8-byte "
                                 f"header length {_AGAIN}")
            n = int.from_bytes(head, "little")
            first = fh.read(1)
            if first and first != b"{":
                kind = ("a zip archive (a PyTorch .pt/.ckpt renamed?)" if head.startswith(b"PK\x03\x04") else
                        "a pickle (a PyTorch .pt/.ckpt renamed?)" if head[:1] == b"\x80" else
                        "its header does not start with a JSON object (corrupt, or another format)")
                raise ValueError(f"{name}: not a safetensors file: {kind}")
            fh.seek(8)
            if n > MAX_HEADER_BYTES or n < 2:
                raise ValueError(f"{name}: not a safetensors file: its first 8 bytes declare a {n}-byte header "
                                 f"(valid: 2 to {MAX_HEADER_BYTES} bytes); is it another format, or corrupt?")
            if 8 + n > size:
                raise ValueError(f"{name}: truncated: its header needs {n} bytes but the file has {size - 8} "
                                 f"after the length {_AGAIN}")
            raw = fh.read(n)
    except OSError as exc:
        raise ValueError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name}: corrupt: its header is not valid JSON ({exc}) {_AGAIN}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{name}: corrupt: its header is not a JSON object")
    data = size - 8 - n
    end_max = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            count = 1
            for d in shape:
                count *= int(d)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{name}: corrupt: the header entry for tensor {key!r} is malformed") from None
        if not (0 <= start <= end):
            raise ValueError(f"{name}: corrupt: tensor {key!r} has data offsets [{start}, {end}]")
        width = _DTYPE_BYTES.get(dtype)
        if width is not None and (end - start) != count * width:
            raise ValueError(f"{name}: corrupt: tensor {key!r} ({dtype} {list(shape)}) needs {count * width} "
                             f"bytes but its offsets span {end - start}")
        end_max = max(end_max, end)
    if end_max > data:
        raise ValueError(f"{name}: truncated: its header places tensor data up to byte {end_max} but the file "
                         f"holds {data} bytes of data {_AGAIN}")
    return header


def open_safetensors(path: str | os.PathLike, framework: str = "pt", device: str = "cpu"):
    """`safetensors.safe_open` after `check_safetensors`; library errors are re-raised naming the file."""
    from safetensors import SafetensorError, safe_open

    check_safetensors(path)
    try:
        return safe_open(str(path), framework=framework, device=device)
    except SafetensorError as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None


def check_safetensors_folder(folder: str | os.PathLike) -> None:
    """Checks every `.safetensors` file under `folder` (headers only) before a from_pretrained() load."""
    for f in sorted(Path(folder).rglob("*.safetensors")):
        check_safetensors(f)
