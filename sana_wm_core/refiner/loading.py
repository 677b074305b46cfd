"""Finding and loading the release's `refiner/` folder: LTX-2 refiner DiT, text connectors, Gemma-3.

Layouts accepted (first match wins): a folder holding `transformer/` and `connectors/` (the refiner
folder itself), or a repo folder holding it as `refiner/` (SANA-WM_bidirectional) or
`refiner_diffusers/` (SANA-WM_streaming). Gemma-3 comes from an explicit folder, `refiner/text_encoder`
or the streaming repo's `gemma3_12b/`; bf16/fp32 and fp8 (optionally scaled) safetensors all load.

The DiT is built on the meta device and only its video branch is read from disk: the audio branch of
the LTX-2 checkpoint is never run by the refiner, so it is never materialised.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

from ..deps import require
from ..runtime.fp8 import FP8_DTYPE, convert_linears_to_fp8

DEFAULT_TEXT_MAX_LENGTH = 1024
HUB_REPO = "Efficient-Large-Model/SANA-WM_bidirectional"
_REFINER_SUBDIRS = ("", "refiner", "refiner_diffusers")
_GEMMA_SUBDIRS = ("text_encoder", "../gemma3_12b")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")

_VIDEO_TOP = re.compile(r"^(proj_in|time_embed|caption_projection|norm_out|proj_out)\.|^scale_shift_table$")
_VIDEO_BLOCK = re.compile(r"^transformer_blocks\.\d+\.((norm1|attn1|norm2|attn2|norm3|ff)\.|scale_shift_table$)")
_SCALE_SUFFIXES = ("_scale", "_scale_inv")


def is_video_key(key: str) -> bool:
    """True for refiner-DiT weights the video-only forward uses."""
    return bool(_VIDEO_TOP.search(key) or _VIDEO_BLOCK.search(key))


@dataclass(frozen=True)
class RefinerPaths:
    """Where each refiner component was found."""

    root: Path
    transformer: Path
    connectors: Path
    text_encoder: Path
    tokenizer: Path
    text_max_length: int = DEFAULT_TEXT_MAX_LENGTH


def _is_refiner_dir(p: Path) -> bool:
    return (p / "transformer" / "config.json").is_file() and (p / "connectors" / "config.json").is_file()


def _has_tokenizer(p: Path) -> bool:
    return any((p / f).is_file() for f in _TOKENIZER_FILES)


def _candidates(source: str, search_roots: Sequence[Path]) -> list[Path]:
    src = Path(source).expanduser()
    bases = [src] if src.is_absolute() else [Path.cwd() / src] + [Path(r) / src for r in search_roots]
    if "/" in source and not src.is_absolute():  # a hub id: also try its repo name alone
        bases += [Path(r) / src.name for r in search_roots]
    return [(b / sub).resolve() if sub else b for b in bases for sub in _REFINER_SUBDIRS]


def _not_found(what: str, looked: Iterable[Path], hint: str) -> FileNotFoundError:
    lines = "\n  ".join(str(p) for p in looked)
    return FileNotFoundError(f"{what} not found. Looked in:\n  {lines}\n{hint}")


def _text_max_length(root: Path) -> int:
    for f in (root / "model_index.json", root.parent / "model_index.json"):
        if f.is_file():
            value = json.loads(f.read_text()).get("text_max_sequence_length")
            if value:
                return int(value)
    return DEFAULT_TEXT_MAX_LENGTH


_HUB_PATTERNS = ("refiner/transformer/*", "refiner/connectors/*", "refiner/text_encoder/*",
                 "refiner/tokenizer/*", "refiner/model_index.json")


def _download(source: str, search_roots: Sequence[Path], progress) -> Path | None:
    """Fetches the refiner part of a hub repo into the first search root (None if it cannot)."""
    from ..weights.locate import locate_repo

    name = source[len("hf://"):] if source.startswith("hf://") else source
    if name.count("/") != 1:
        return None
    got = locate_repo(name, search_dirs=list(search_roots), hub_repo=name, allow_patterns=list(_HUB_PATTERNS),
                      required=("refiner/transformer/config.json", "refiner/connectors/config.json"),
                      progress=progress)
    return got / "refiner"


def locate_refiner(source: str | Path, search_roots: Sequence[str | Path] = (),
                   gemma_dir: str | Path | None = None, *, allow_download: bool = False,
                   progress=None) -> RefinerPaths:
    """Resolves a folder, a repo name under `search_roots` (e.g. models/sana_wm) or a hub id.

    With `allow_download`, a hub id (`owner/repo` or `hf://owner/repo`) that is not on disk is fetched
    (refiner files only) into the first search root; offline mode raises with the places searched.
    """
    if not str(source).strip():
        raise ValueError("refiner source is empty: give a folder, a models/sana_wm repo name or a hub id")
    roots = [Path(r) for r in search_roots]
    looked = _candidates(str(source).removeprefix("hf://"), roots)
    root = next((p for p in looked if _is_refiner_dir(p)), None)
    if root is None and allow_download:
        fetched = _download(str(source), roots, progress)
        root = fetched if fetched is not None and _is_refiner_dir(fetched) else None
    if root is None:
        raise _not_found(
            f"SANA-WM refiner ({source!r}: transformer/config.json + connectors/config.json)", looked,
            f"Download it with: huggingface-cli download {HUB_REPO} --include 'refiner/*' "
            f"--local-dir <ComfyUI>/models/sana_wm/SANA-WM_bidirectional",
        )
    gemma_looked: list[Path] = []
    if gemma_dir is not None and str(gemma_dir).strip():
        g = Path(gemma_dir).expanduser()
        gemma_looked.append(g)
        if not (g / "config.json").is_file():
            raise _not_found(f"Gemma-3 text encoder ({gemma_dir})", gemma_looked,
                             "Pass a transformers Gemma-3 folder holding config.json and *.safetensors.")
        text_encoder = g
    else:
        gemma_looked = [(root / s).resolve() for s in _GEMMA_SUBDIRS]
        text_encoder = next((p for p in gemma_looked if (p / "config.json").is_file()), None)
        if text_encoder is None:
            raise _not_found("Gemma-3 text encoder for the refiner", gemma_looked,
                             f"Download {HUB_REPO} 'refiner/text_encoder/*' or set the Gemma-3 folder input.")
    tok_looked = [text_encoder, root / "tokenizer", root / "text_encoder"]
    tokenizer = next((p for p in tok_looked if _has_tokenizer(p)), None)
    if tokenizer is None:
        raise _not_found("Gemma-3 tokenizer", tok_looked, "Copy the tokenizer files next to the Gemma-3 weights.")
    return RefinerPaths(root=root, transformer=root / "transformer", connectors=root / "connectors",
                        text_encoder=text_encoder, tokenizer=tokenizer, text_max_length=_text_max_length(root))


# ------------------------------------------------------------------ safetensors reading


def _weight_files(folder: Path) -> list[Path]:
    index = sorted(folder.glob("*.safetensors.index.json"))
    if index:
        names = sorted(set(json.loads(index[0].read_text())["weight_map"].values()))
        return [folder / n for n in names]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise _not_found(f"weights (*.safetensors) in {folder}", [folder], "The folder has a config but no weights.")
    return files


def _is_aux_key(key: str) -> bool:
    """Quantisation side-tensors (scales) that travel with a weight rather than being one."""
    return (key.endswith(_SCALE_SUFFIXES) or key.endswith(".scale_weight") or key.endswith(".input_scale")
            or key == "scaled_fp8")


def checkpoint_keys(folder: Path) -> set[str]:
    from ..weights.safetensors_file import open_safetensors as safe_open

    keys: set[str] = set()
    for f in _weight_files(folder):
        with safe_open(str(f), framework="pt", device="cpu") as fh:
            keys.update(k for k in fh.keys() if not _is_aux_key(k))
    return keys


def iter_tensors(folder: Path, want=lambda k: True) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, float tensor) pairs; fp8 tensors come back dequantised with their stored scale, if any."""
    from ..weights.safetensors_file import open_safetensors as safe_open

    for f in _weight_files(folder):
        with safe_open(str(f), framework="pt", device="cpu") as fh:
            keys = set(fh.keys())
            for key in sorted(keys):
                if _is_aux_key(key) or not want(key):
                    continue
                t = fh.get_tensor(key)
                if t.dtype in (FP8_DTYPE, torch.float8_e5m2):
                    t = t.to(torch.float32)
                    stem = key[: -len(".weight")] if key.endswith(".weight") else key
                    for sk in (f"{key}_scale", f"{stem}.weight_scale", f"{stem}.scale_weight"):
                        if sk in keys:
                            s = fh.get_tensor(sk).to(torch.float32)
                            t = t * (s if s.ndim == 0 or s.numel() == 1 else s.view(-1, *([1] * (t.ndim - 1))))
                            break
                yield key, t


def _read_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _build_on_meta(cls, folder: Path):
    config = {k: v for k, v in _read_config(folder).items() if not k.startswith("_")}
    with torch.device("meta"):
        return cls.from_config(config)


def _fill(model: torch.nn.Module, folder: Path, dtype: torch.dtype, want, what: str) -> None:
    known = set(model.state_dict())
    expected = {k for k in known if want(k)}
    unexpected = sorted(checkpoint_keys(folder) - known)
    loaded: dict[str, torch.Tensor] = {}
    for key, t in iter_tensors(folder, lambda k: k in expected):
        loaded[key] = t.to(dtype) if t.is_floating_point() else t
    missing = sorted(expected - loaded.keys())
    if missing:
        raise ValueError(
            f"{what} checkpoint in {folder} does not match the network: {len(missing)} missing keys "
            f"(first: {missing[:8]}), {len(unexpected)} unexpected (first: {unexpected[:8]}). "
            "Use the diffusers-format refiner folder from the release."
        )
    model.load_state_dict(loaded, strict=False, assign=True)


def load_refiner_transformer(folder: str | Path, dtype: torch.dtype = torch.bfloat16, fp8: bool = False):
    """The LTX-2 refiner DiT on CPU, video branch only; with `fp8` its block linears store e4m3 weights."""
    SanaWMLTX2RefinerTransformer3DModel = require("diffusers", "The Stage-2 refiner",
                                                  "diffusers>=0.42.1").SanaWMLTX2RefinerTransformer3DModel

    folder = Path(folder)
    model = _build_on_meta(SanaWMLTX2RefinerTransformer3DModel, folder)
    _fill(model, folder, dtype, is_video_key, "refiner transformer")
    if fp8:
        for block in model.transformer_blocks:
            for name in ("attn1", "attn2", "ff"):
                convert_linears_to_fp8(getattr(block, name), dtype)
    return model.eval().requires_grad_(False)


def load_connectors(folder: str | Path, dtype: torch.dtype = torch.bfloat16):
    """The LTX-2 text connectors (video and audio halves; the forward runs both)."""
    LTX2TextConnectors = require("diffusers.pipelines.ltx2.connectors", "The Stage-2 refiner",
                                 "diffusers>=0.42.1").LTX2TextConnectors

    folder = Path(folder)
    model = _build_on_meta(LTX2TextConnectors, folder)
    _fill(model, folder, dtype, lambda k: True, "text connectors")
    return model.eval().requires_grad_(False)


def load_text_encoder(folder: str | Path, dtype: torch.dtype = torch.bfloat16, attn_implementation: str = "sdpa"):
    """Gemma-3 (multimodal or text-only checkpoint) on CPU; fp8 checkpoints are dequantised to `dtype`."""
    import transformers

    folder = Path(folder)
    config = transformers.AutoConfig.from_pretrained(str(folder))
    cls = (transformers.Gemma3ForConditionalGeneration if config.model_type == "gemma3"
           else transformers.AutoModelForCausalLM)
    if _has_fp8(folder) and getattr(config, "quantization_config", None) is None:
        state = dict(iter_tensors(folder))
        model = cls.from_pretrained(None, config=config, state_dict=state, dtype=dtype,
                                    attn_implementation=attn_implementation)
    else:
        model = cls.from_pretrained(str(folder), dtype=dtype, attn_implementation=attn_implementation)
    return model.eval().requires_grad_(False)


def _has_fp8(folder: Path) -> bool:
    from ..weights.safetensors_file import open_safetensors as safe_open

    for f in _weight_files(folder):
        with safe_open(str(f), framework="pt", device="cpu") as fh:
            for key in list(fh.keys())[:64]:
                if fh.get_slice(key).get_dtype() in ("F8_E4M3", "F8_E5M2"):
                    return True
    return False


def load_tokenizer(folder: str | Path):
    """The Gemma tokenizer, with its pad token (left padding is chosen per call)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
