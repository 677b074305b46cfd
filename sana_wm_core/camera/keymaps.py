"""The key maps of the action language: which motion each key drives, in one table.

The action parser integrates it, the video overlay lights its HUD from it and the browser timeline labels
its blocks from it (served by the preview route, `key_labels`), so a key means the same thing everywhere.
Each key drives one of four motion axes with a sign: forward (+ forward), strafe (+ right), yaw (+ right)
and pitch (+ up). Two maps exist because the reference changed after its first release (see `actions`).
"""
from __future__ import annotations

from typing import Iterable

AXES = ("forward", "strafe", "yaw", "pitch")
_F, _S, _Y, _P = range(4)

# mapping -> key -> (axis index, sign)
KEY_MAPS: dict[str, dict[str, tuple[int, int]]] = {
    # first release (diffusers): w/s forward/back, a/d strafe, j/l yaw, i/k pitch
    "classic": {"w": (_F, 1), "s": (_F, -1), "d": (_S, 1), "a": (_S, -1),
                "l": (_Y, 1), "j": (_Y, -1), "i": (_P, 1), "k": (_P, -1)},
    # current NVlabs demo: w/s forward/back, a/d yaw, j/l strafe, i/k pitch
    "game": {"w": (_F, 1), "s": (_F, -1), "l": (_S, 1), "j": (_S, -1),
             "d": (_Y, 1), "a": (_Y, -1), "i": (_P, 1), "k": (_P, -1)},
}
MAPPINGS = tuple(KEY_MAPS)
ALLOWED_KEYS = "".join(sorted(KEY_MAPS["classic"]))

_WORDS = {(_F, 1): "forward", (_F, -1): "back", (_S, 1): "strafe right", (_S, -1): "strafe left",
          (_Y, 1): "yaw right", (_Y, -1): "yaw left", (_P, 1): "pitch up", (_P, -1): "pitch down"}


def key_map(mapping: str) -> dict[str, tuple[int, int]]:
    """The `key -> (axis, sign)` table of `mapping`; ValueError for an unknown name."""
    table = KEY_MAPS.get(mapping)
    if table is None:
        raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    return table


def key_vector(keys: Iterable[str], mapping: str) -> tuple[int, int, int, int]:
    """Summed (forward, strafe, yaw, pitch) signs of the held `keys` (opposite keys cancel to 0)."""
    table = key_map(mapping)
    out = [0, 0, 0, 0]
    for k in keys:
        axis, sign = table[k]
        out[axis] += sign
    return out[0], out[1], out[2], out[3]


def key_labels(mapping: str) -> dict[str, str]:
    """`key -> "forward" | "strafe left" | "yaw right" | ...` for `mapping` (what the browser shows)."""
    return {k: _WORDS[v] for k, v in sorted(key_map(mapping).items())}
