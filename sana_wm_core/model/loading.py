"""load_transformer: original single-file checkpoints, diffusers `transformer/` folders, or state dicts.

The network is built on the meta device and every tensor is read one at a time (safetensors), cast to
the target dtype (or quantised to fp8) and assigned in place, so loading never holds two copies.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

import torch
import torch.nn as nn

from .config import SanaWMConfig
from .convert import original_to_diffusers, unwrap_state_dict, infer_config
from ..runtime.dtypes import WEIGHT_FORMATS, parse_dtype
from ..runtime.fp8 import FP8_DTYPE, quantize_fp8
from .ops import is_matmul_layer, keeps_row_scale
from .transformer import SanaWMTransformer

log = logging.getLogger("sana_wm")

_OPTIONAL_KEYS = ("recall_gate",)  # buffers some checkpoints omit; they are zeros and unused


class _Source:
    """Lazy tensor source: diffusers-named key -> shape now, -> tensor on demand."""

    def __init__(self, shapes: dict, getter, renamed: dict, config_json: Optional[dict]) -> None:
        self.shapes, self._get, self.renamed, self.config_json = shapes, getter, renamed, config_json

    def tensor(self, key: str) -> torch.Tensor:
        t = self._get(self.renamed[key])
        want = self.shapes[key]
        return t.reshape(want) if tuple(t.shape) != tuple(want) else t


def _open(src: Union[str, os.PathLike, Mapping[str, Any]]) -> _Source:
    if isinstance(src, Mapping):
        raw = unwrap_state_dict(src)
        return _from_mapping({k: tuple(v.shape) for k, v in raw.items()}, raw.__getitem__, None)
    path = Path(src)
    if not path.exists():
        raise ValueError(f"checkpoint {path} does not exist; pass the DiT .safetensors file or a diffusers "
                         "transformer/ folder")
    config_json = None
    if path.is_dir():
        for sub in ("transformer", "dit"):
            if (path / sub).is_dir() and not list(path.glob("*.safetensors")):
                path = path / sub
        if (path / "config.json").is_file():
            config_json = json.loads((path / "config.json").read_text())
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise ValueError(f"no .safetensors files in {path}")
    elif path.suffix == ".safetensors":
        files = [path]
    else:   # a .pt: its safetensors conversion when one is up to date, else PyTorch's safe (code-free) reader
        from ..weights.torch_pt import find_converted, load_pt_state_dict

        converted = find_converted(path)
        if converted is None:
            raw = load_pt_state_dict(path)
            return _from_mapping({k: tuple(v.shape) for k, v in raw.items()}, raw.__getitem__, None)
        files = [converted]
    from ..weights.safetensors_file import open_safetensors as safe_open

    handles, where, shapes = [], {}, {}
    for f in files:
        h = safe_open(str(f), framework="pt", device="cpu")
        handles.append(h)
        for k in h.keys():
            where[k] = h
            shapes[k] = tuple(h.get_slice(k).get_shape())
    source_of = unwrap_state_dict({k: k for k in shapes})  # unwrapped key -> key in the file

    def get(unwrapped_key: str) -> torch.Tensor:
        orig = source_of[unwrapped_key]
        return where[orig].get_tensor(orig)

    return _from_mapping({k: shapes[orig] for k, orig in source_of.items()}, get, config_json)


def _from_mapping(shapes: dict, getter, config_json) -> _Source:
    """Rename to diffusers keys, remembering each new key's source key."""
    renamed_shapes, renamed = {}, {}
    for k, shape in shapes.items():
        for nk, ns in original_to_diffusers({k: shape}).items():
            renamed_shapes[nk], renamed[nk] = tuple(ns), k
    return _Source(renamed_shapes, getter, renamed, config_json)


def _check_keys(expected: dict, shapes: dict) -> None:
    missing = [k for k in expected if k not in shapes and not k.endswith(_OPTIONAL_KEYS)]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [f"{k}: checkpoint {shapes[k]} vs model {expected[k]}" for k in expected
             if k in shapes and tuple(shapes[k]) != expected[k]]
    if missing or unexpected or wrong:
        def fmt(xs):
            return ", ".join(xs[:20]) + (f", ... ({len(xs)} in all)" if len(xs) > 20 else "")
        raise ValueError("checkpoint does not match the SANA-WM Stage-1 transformer:"
                         + (f"\n  missing keys: {fmt(missing)}" if missing else "")
                         + (f"\n  unexpected keys: {fmt(unexpected)}" if unexpected else "")
                         + (f"\n  shape mismatches: {fmt(wrong)}" if wrong else "")
                         + "\nPass the Stage-1 DiT (dit/sana_wm_1600m_720p.safetensors or the diffusers "
                           "transformer/ folder), or a config that matches it.")


def _fp8_eligible(model: nn.Module, key: str) -> bool:
    mod_name, _, name = key.rpartition(".")
    return name == "weight" and key.startswith("blocks.") and is_matmul_layer(model.get_submodule(mod_name))


def _layout(cfg: SanaWMConfig) -> tuple[dict, set]:
    """Every checkpoint key of the network -> its shape, and which keys are parameters (the rest are buffers),
    from a meta-built default-operations network: other operations classes may create their weights only when
    the state dict arrives (ComfyUI's Dynamic VRAM), so their modules cannot list them beforehand."""
    with torch.device("meta"):
        ref = SanaWMTransformer(cfg)
    return {k: tuple(v.shape) for k, v in ref.state_dict().items()}, {k for k, _ in ref.named_parameters()}


def _assign(model: nn.Module, key: str, value: torch.Tensor, is_param: bool) -> None:
    """Put `value` at the dotted `key` without copying (a frozen parameter, or a buffer)."""
    mod_name, _, leaf = key.rpartition(".")
    mod = model.get_submodule(mod_name) if mod_name else model
    if is_param:
        setattr(mod, leaf, nn.Parameter(value, requires_grad=False))
    else:
        mod._buffers[leaf] = value


def _config_yaml_heads(src: Any) -> Optional[int]:
    """The cross-attention heads an original-layout release's config.yaml gives for its DiT file, if any."""
    if isinstance(src, Mapping) or Path(src).suffix not in (".safetensors", ".pt"):
        return None
    from .release import read_release

    return read_release(Path(src)).cross_heads


def load_transformer(state_dict_or_path: Union[str, os.PathLike, Mapping[str, Any]],
                     config: Union[None, SanaWMConfig, dict] = None, *, dtype: Union[None, str, torch.dtype] = None,
                     device: Union[str, torch.device] = "cpu", weight_format: str = "default",
                     overrides: Optional[Mapping[str, Any]] = None, operations: Any = None) -> SanaWMTransformer:
    """Build the Stage-1 DiT from a checkpoint in either key layout.

    config: a SanaWMConfig, a diffusers-style dict, or None (read config.json when the folder has one,
    otherwise infer everything from the tensor shapes). dtype: fp32 / bf16 / fp16 (the compute dtype; None
    keeps the checkpoint's) or fp8 (= bf16 with weight_format fp8_e4m3fn). weight_format "fp8_e4m3fn" stores
    the block matmul weights in e4m3 with a per-row scale (sana_wm_core/runtime/fp8.py), upcast per layer.
    overrides: config fields no tensor shape shows, set on top of the config (the chunk-causal release's
    `chunk_size` / `chunk_split_strategy` from its config.yaml). operations: the layer classes' namespace
    (sana_wm_core/model/ops.py; None = plain torch.nn; ComfyUI's loader passes `comfy.ops.*`). With the default
    classes fp8 weights keep a per-row scale; with others (ComfyUI's) they are a plain e4m3 cast that the
    classes upcast per layer, as ComfyUI stores every fp8 model. A checkpoint that does not fit raises
    ValueError listing missing/unexpected keys.
    """
    if weight_format not in WEIGHT_FORMATS:
        raise ValueError(f"weight_format {weight_format!r} is not one of {', '.join(WEIGHT_FORMATS)}")
    src = _open(state_dict_or_path)
    if config is None:
        base = None
        if src.config_json is not None:
            base = SanaWMConfig.from_diffusers(src.config_json).to_dict()
        beside = _config_yaml_heads(state_dict_or_path) if base is None else None
        if beside is not None:          # a release file's config.yaml names what its tensors cannot show
            base = {"num_attention_heads": beside}
        if overrides:                   # e.g. the cross-attention heads from config.yaml, needed to infer
            base = {**(base or {}), **dict(overrides)}
        cfg = infer_config(src.shapes, base=base)
    elif isinstance(config, dict):
        cfg = SanaWMConfig.from_diffusers(config)
    else:
        cfg = config
    if overrides:
        cfg = SanaWMConfig(**{**cfg.to_dict(), **dict(overrides)})
    target = parse_dtype(dtype)
    fp8 = weight_format == "fp8_e4m3fn" or (target is not None and target == FP8_DTYPE)
    if fp8 and (target is None or target == FP8_DTYPE):
        target = torch.bfloat16          # fp8 storage computes in bf16 unless a compute dtype is given
    expected, params = _layout(cfg)
    _check_keys(expected, src.shapes)
    with torch.device("meta"):
        model = SanaWMTransformer(cfg, operations=operations)
    dev = torch.device(device)
    for key, shape in expected.items():
        if key not in src.shapes:
            _assign(model, key, torch.zeros(shape, device=dev), key in params)
            continue
        t = src.tensor(key)
        if t.is_floating_point():
            cast = target or t.dtype
            if fp8 and _fp8_eligible(model, key):
                layer = model.get_submodule(key.rpartition(".")[0])
                if keeps_row_scale(layer):
                    q, scale = quantize_fp8(t)
                    _assign(model, key, q.to(dev), True)
                    layer.weight_scale = scale.to(dev)
                    continue
                cast = FP8_DTYPE
            t = t.to(cast)
        _assign(model, key, t.to(dev), key in params)
    for name, buf in model.named_buffers():
        if buf is not None and buf.is_meta:
            raise ValueError(f"buffer {name} was not loaded")
    model.eval()
    log.info("SANA-WM DiT loaded: %d blocks, hidden %d, dtype %s%s", cfg.num_layers, cfg.hidden_size,
             target or "checkpoint", ", block weights fp8" if fp8 else "")
    return model


def iter_fp8_layers(model: nn.Module) -> Iterator[nn.Module]:
    for name, m in model.named_modules():
        if name.startswith("blocks.") and is_matmul_layer(m):
            yield m


def quantize_model_fp8_(model: SanaWMTransformer) -> SanaWMTransformer:
    """Convert an in-memory model: block matmul weights to fp8 e4m3, everything else to bf16."""
    model.to(torch.bfloat16)
    for m in iter_fp8_layers(model):
        m.to_fp8_()
    return model
