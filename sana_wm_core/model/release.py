"""What a SANA-WM release folder says about Stage 1: where the DiT weights are and the sampler settings.

Two layouts exist. The original (`SANA-WM_bidirectional/`) holds `dit/*.safetensors` and a `config.yaml`
whose `scheduler.inference_flow_shift` (else `flow_shift`) is the default flow shift and whose
`text_encoder.chi_prompt` is the prompt prefix. The diffusers layout (`...-diffusers/`) holds
`transformer/` and `scheduler/scheduler_config.json` (its `shift`). The chunk-causal release
(`SANA-WM_chunk_causal/`) has the original layout with `model.chunk_size`, `model.chunk_split_strategy` and
`scheduler.vis_sampler: chunk_flow_euler` in its config. The distilled streaming release
(`SANA-WM_streaming/`) holds `sana_dit/model.pt` (a training checkpoint; its generator is the DiT, same key
names) beside `ltx2_causal_vae/`, `refiner_diffusers/` and `gemma3_12b/`, and no config: the streaming
settings are NVlabs' in-repo `sana_wm_streaming_1600m_720p.yaml` (chunk_size 3, self_forcing), which a
local bundle may carry at its root. `Stage1Model` is what the pack keeps behind its core MODEL: the DiT
plus these settings.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..text.chi_prompt import chi_from_config
from .convert import KNOWN_CROSS_HEADS_BY_NAME

DEFAULT_FLOW_SHIFT = 9.8   # the release config's inference_flow_shift
# The bidirectional release runs flow-Euler (its config's vis_sampler flow_dpm-solver is a training-time
# preview); the chunk-causal release runs its own staggered sampler.
DEFAULT_SAMPLER = "flow_euler_ltx"
CHUNK_SAMPLER = "chunk_flow_euler"
STREAM_SAMPLER = "self_forcing"   # the distilled streaming release (SANA-WM_streaming)
STREAMING_DIT = "sana_dit/model.pt"
STREAMING_CONFIG = "sana_wm_streaming_1600m_720p.yaml"   # not in the hub repo; a local bundle may hold it
STREAMING_CHUNK_SIZE = 3          # the streaming config's model.chunk_size
STREAMING_FLOW_SHIFT = 8.0        # its inference_flow_shift (unused by self_forcing's explicit sigmas)


@dataclass
class ReleaseInfo:
    """Paths and settings read from one release folder."""

    root: Path
    layout: str                       # "original" | "diffusers" | "streaming"
    dit_path: Path                    # a .safetensors file, the diffusers transformer/ folder, or a .pt
    flow_shift: float
    chi_prompt: tuple[str, ...]
    chunk_size: int | None = None             # set = the chunk-causal variant
    chunk_split_strategy: str = "first_chunk_plus_one"
    sampler: str = DEFAULT_SAMPLER            # the release's sampler
    cross_heads: int | None = None            # config.yaml's model.num_heads (or its model name's)

    @property
    def model_overrides(self) -> dict:
        """Config fields the checkpoint's shapes cannot tell (`load_transformer(..., overrides=...)`)."""
        out: dict = {"release_sampler": self.sampler}     # the variant, which no shape shows (variants.py)
        if self.cross_heads is not None:
            out["num_attention_heads"] = self.cross_heads
        if self.chunk_size is not None:
            out.update(chunk_size=self.chunk_size, chunk_split_strategy=self.chunk_split_strategy)
        return out


@dataclass
class Stage1Model:
    """A loaded Stage-1 DiT with its release settings (kept behind the pack's core MODEL under ComfyUI)."""

    transformer: Any
    flow_shift: float = DEFAULT_FLOW_SHIFT
    chi_prompt: tuple[str, ...] = ()          # the release config.yaml's prompt prefix (empty = unknown)
    sampler: str = DEFAULT_SAMPLER            # the release's sampler (chunk_flow_euler for chunk-causal)

    @property
    def chunk_causal(self) -> bool:
        """True for the chunk-causal variant (the DiT's config has a chunk_size)."""
        return getattr(getattr(self.transformer, "config", None), "chunk_size", None) is not None


def read_config_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    return data if isinstance(data, dict) else {}


def flow_shift_from_config(config: dict) -> float:
    """`scheduler.inference_flow_shift`, else `scheduler.flow_shift`, else the release default 9.8."""
    sched = config.get("scheduler") or {}
    for key in ("inference_flow_shift", "flow_shift"):
        value = sched.get(key)
        if value is not None:
            return float(value)
    return DEFAULT_FLOW_SHIFT


def _original(root: Path, dit: Path, cfg: dict) -> ReleaseInfo:
    """An original-layout release: sampler settings and, for the chunk-causal variant, its chunking."""
    model = cfg.get("model") or {}
    sched = cfg.get("scheduler") or {}
    chunk = model.get("chunk_size")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ValueError(f"config.yaml model.chunk_size must be a positive integer, got {chunk!r}")
    strategy = str(model.get("chunk_split_strategy") or "first_chunk_plus_one")
    if sched.get("vis_sampler") == CHUNK_SAMPLER and chunk is None:
        raise ValueError("config.yaml sets scheduler.vis_sampler chunk_flow_euler but no model.chunk_size; "
                         "use the config.yaml of Efficient-Large-Model/SANA-WM_chunk_causal")
    sampler = CHUNK_SAMPLER if chunk is not None else DEFAULT_SAMPLER
    return ReleaseInfo(root, "original", dit, flow_shift_from_config(cfg), chi_from_config(cfg),
                       chunk_size=chunk, chunk_split_strategy=strategy, sampler=sampler,
                       cross_heads=_cross_heads_from_config(model))


def _cross_heads_from_config(model: dict) -> int | None:
    """The cross-attention heads (no tensor shows them): `model.num_heads`, the NVlabs model-zoo argument, when
    the config sets it, else the released architecture named by `model.model`, else unknown (None)."""
    heads = model.get("num_heads")
    if heads is None:
        return KNOWN_CROSS_HEADS_BY_NAME.get(str(model.get("model") or ""))
    if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
        raise ValueError(f"config.yaml model.num_heads must be a positive integer, got {heads!r}")
    return heads


def _dit_file(folder: Path) -> Path | None:
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    return files[0] if len(files) == 1 else None


def _streaming(root: Path, dit: Path) -> ReleaseInfo:
    """SANA-WM_streaming: the DiT is its `.pt`'s up-to-date safetensors conversion when one exists."""
    from ..weights.torch_pt import find_converted

    cfg_path = next((p for p in (root / STREAMING_CONFIG, root / "config.yaml") if p.is_file()), None)
    cfg = read_config_yaml(cfg_path) if cfg_path else {}
    chunk = (cfg.get("model") or {}).get("chunk_size", STREAMING_CHUNK_SIZE)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"{cfg_path}: model.chunk_size must be a positive integer, got {chunk!r}")
    shift = flow_shift_from_config(cfg) if (cfg.get("scheduler") or {}) else STREAMING_FLOW_SHIFT
    if dit.suffix == ".pt":
        dit = find_converted(dit) or dit
    return ReleaseInfo(root, "streaming", dit, shift, chi_from_config(cfg), chunk_size=chunk,
                       chunk_split_strategy="first_chunk_plus_one", sampler=STREAM_SAMPLER,
                       cross_heads=_cross_heads_from_config(cfg.get("model") or {}))


def read_release(root: str | Path) -> ReleaseInfo:
    """Inspect a release folder (any layout); FileNotFoundError says what is missing and where."""
    root = Path(root)
    if root.is_file() and (root.suffix == ".pt" or root.parent.name == "sana_dit"):   # a bare streaming DiT
        base = root.parent.parent if root.parent.name == "sana_dit" else root.parent
        return _streaming(base, root)
    streaming = root / STREAMING_DIT
    if streaming.is_file():
        return _streaming(root, streaming)
    if root.is_file() and root.suffix == ".safetensors":      # a bare DiT file: look for config.yaml nearby
        cfg_path = next((p / "config.yaml" for p in (root.parent, root.parent.parent)
                         if (p / "config.yaml").is_file()), None)
        cfg = read_config_yaml(cfg_path) if cfg_path else {}
        return _original(root.parent, root, cfg)
    if (root / "transformer" / "config.json").is_file():
        shift = DEFAULT_FLOW_SHIFT
        sched = root / "scheduler" / "scheduler_config.json"
        if sched.is_file():
            shift = float(json.loads(sched.read_text()).get("shift", shift))
        return ReleaseInfo(root, "diffusers", root / "transformer", shift, chi_from_config(None))
    dit = _dit_file(root / "dit")
    if dit is not None:
        cfg = read_config_yaml(root / "config.yaml") if (root / "config.yaml").is_file() else {}
        return _original(root, dit, cfg)
    raise FileNotFoundError(
        f"{root} is not a SANA-WM Stage-1 folder: expected dit/sana_wm_1600m_720p.safetensors + config.yaml "
        "(Efficient-Large-Model/SANA-WM_bidirectional), dit/sana_wm_chunk_causal_1600m_720p.safetensors + "
        "config.yaml (Efficient-Large-Model/SANA-WM_chunk_causal), sana_dit/model.pt "
        "(Efficient-Large-Model/SANA-WM_streaming) or transformer/ + scheduler/ "
        "(Efficient-Large-Model/SANA-WM_bidirectional-diffusers)")
