"""Finding, checking and loading a Pi3X checkpoint (the released `yyfz233/Pi3X` model.safetensors).

Loading is strict: every tensor name and shape in the file is compared with the full Pi3X module tree and a
mismatch raises ValueError listing what is missing and unexpected. Only the tensors `local_points` needs are
then read from disk, so the camera/confidence/multimodal branches cost no memory. Accepted leniencies, both
exact in meaning: a file saved after `disable_multimodal()` (no multimodal tensors at all), and the two
ImageNet normalisation constants being absent (they are fixed numbers, not learned).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from ..weights.safetensors_file import open_safetensors as safe_open

from .config import METADATA_KEY, Pi3XConfig
from .network import CONSTANT_BUFFERS, MULTIMODAL_PREFIXES, Pi3XNetwork, constant_buffer

PI3X_REPO_ID = "yyfz233/Pi3X"
PI3X_FILENAME = "model.safetensors"
HUB_CHOICE = f"{PI3X_REPO_ID} (download)"
_HELP = (f"download {PI3X_FILENAME} from https://huggingface.co/{PI3X_REPO_ID} and put it in ComfyUI's "
         "models/pi3x/ folder (any file name ending in .safetensors)")


def expected_shapes(config: Pi3XConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the full Pi3X with its shape, computed on the meta device (no memory)."""
    with torch.device("meta"):
        net = Pi3XNetwork(config, runtime_only=False)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(name -> shape, metadata) of a safetensors file without reading any tensor data."""
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        meta = f.metadata() or {}
    return shapes, meta


def config_for(shapes: dict[str, tuple[int, ...]], meta: dict[str, str]) -> Pi3XConfig:
    """Sizes from the file's metadata when present, else the released model's; multimodal from key presence."""
    config = Pi3XConfig.from_json(meta[METADATA_KEY]) if METADATA_KEY in meta else Pi3XConfig()
    has_mm = any(k.startswith(MULTIMODAL_PREFIXES) for k in shapes)
    return config.with_multimodal(has_mm)


def _listing(names: Iterable[str], limit: int = 20) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "") if names else "none"


def check_keys(shapes: dict[str, tuple[int, ...]], config: Pi3XConfig, source: str) -> None:
    """Raises ValueError naming missing, unexpected and wrongly shaped tensors; silent when the file matches."""
    want = expected_shapes(config)
    missing = [k for k in want if k not in shapes and k not in CONSTANT_BUFFERS]
    unexpected = [k for k in shapes if k not in want]
    wrong = [f"{k} {shapes[k]} (expected {want[k]})" for k in want if k in shapes and shapes[k] != want[k]]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{source} is not a Pi3X checkpoint this loader understands: {len(missing)} missing keys "
            f"[{_listing(missing)}]; {len(unexpected)} unexpected keys [{_listing(unexpected)}]; "
            f"{len(wrong)} wrongly shaped [{_listing(wrong, 5)}]. Use the official {PI3X_REPO_ID} "
            f"{PI3X_FILENAME} unchanged.")


def load_pi3x(path: Path, device: torch.device | str = "cpu") -> Pi3XNetwork:
    """Strictly checked Pi3X (runtime branches only) in fp32 on `device`, in eval mode without gradients."""
    path = Path(path)
    shapes, meta = read_header(path)
    config = config_for(shapes, meta)
    check_keys(shapes, config, str(path))
    with torch.device("meta"):
        net = Pi3XNetwork(config, runtime_only=True)
    wanted = net.state_dict().keys()
    state = {}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        for key in wanted:
            if key in shapes:
                state[key] = f.get_tensor(key).to(device=device, dtype=torch.float32)
    for key in CONSTANT_BUFFERS:  # fixed ImageNet statistics when the file leaves them out
        if key not in state:
            state[key] = constant_buffer(key).to(device)
    net.load_state_dict(state, strict=True, assign=True)
    return net.eval().requires_grad_(False)


def local_checkpoints(search_dirs: Sequence[Path]) -> list[Path]:
    """Every *.safetensors under the given folders (recursively), in a stable order."""
    found: list[Path] = []
    for folder in search_dirs:
        folder = Path(folder)
        if folder.is_dir():
            found.extend(sorted(p for p in folder.rglob("*.safetensors") if p.is_file()))
    return found


def resolve_checkpoint(choice: str, search_dirs: Sequence[Path], download_dir: Path | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Path:
    """The file for a node choice: a path, a name under one of `search_dirs`, or the hub repo (downloaded once).

    The hub file is looked for as `<dir>/Pi3X/model.safetensors` in each search dir, else downloaded there
    (into `download_dir/Pi3X/`) with progress; offline (HF_HUB_OFFLINE) or without network it raises
    FileNotFoundError saying where it looked and how to get the file.
    """
    choice = (choice or "").strip()
    if choice and choice not in (HUB_CHOICE, PI3X_REPO_ID):
        direct = Path(choice)
        if direct.is_absolute() and direct.is_file():
            return direct
        looked = []
        for folder in search_dirs:
            candidate = Path(folder) / choice
            looked.append(str(candidate))
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"Pi3X checkpoint {choice!r} was not found (looked at {', '.join(looked)}). "
                                f"Fix: pick a file that exists, choose {HUB_CHOICE!r}, or {_HELP}.")
    from ..weights.locate import locate_file
    try:
        return locate_file(f"Pi3X/{PI3X_FILENAME}", search_dirs=list(search_dirs), hub_repo=PI3X_REPO_ID,
                           download_dir=Path(download_dir) / "Pi3X" if download_dir is not None else None,
                           progress=progress)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc}\nOr estimate without Pi3X: method 'exif' or 'fov' (or enable fallback)."
                                ) from exc


def release(net: torch.nn.Module | None) -> None:
    """Drops Pi3X's tensors and returns cached GPU memory, so the big models that follow have room."""
    import gc
    if net is not None:
        net.to("meta")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def write_checkpoint(net: Pi3XNetwork, path: Path, *, with_config: bool = True) -> Path:
    """Saves a full network's state dict as safetensors (sizes in the metadata unless they are the defaults)."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {METADATA_KEY: net.config.to_json()} if with_config else {}
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)
    return path
