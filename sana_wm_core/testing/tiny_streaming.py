"""The tiny SANA-WM_streaming bundle, laid out as the hub repo: `sana_dit/model.pt` (a training checkpoint
read with PyTorch's safe loader: {"generator": {"model.<NVlabs key>": ...}, "critic": {...}, "step": n}),
`ltx2_causal_vae/` (`tiny_causal_vae`, in NVlabs' config form), `refiner_diffusers/{transformer,connectors}/`
and `gemma3_12b/` (Gemma-3 + tokenizer). The hub repo has no config; the tiny bundle carries the streaming
config at its root as a local NVlabs bundle may (`sana_wm_streaming_1600m_720p.yaml`), because the tiny DiT's
cross-attention head count is no released size (the real one needs no config; test_streaming_release.py reads
the bundle with the config removed, as the hub has it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import tiny_config as C


def write_streaming_dit(transformer: Any, path: Path) -> Path:
    """The DiT's NVlabs-named weights under `generator` with the trainer's `model.` prefix, plus a small critic
    and a counter, as `torch.save` writes them (zip format, deterministic bytes)."""
    import torch

    from .tiny_release import original_dit_state_dict

    sd = original_dit_state_dict(transformer)
    critic = {f"model.{k}": v.clone() * 0.5 for k, v in list(sd.items())[:4]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": {f"model.{k}": v for k, v in sd.items()}, "critic": critic, "step": 1000}, path)
    return path


def write_streaming_config(path: Path, chi_prompt: list[str]) -> Path:
    """The streaming config: the chunk-causal one with chunk_size 3, the streaming model name and sampler."""
    import yaml

    from ..model.release import STREAMING_CHUNK_SIZE, STREAMING_FLOW_SHIFT
    from .tiny_release import release_config

    cfg = release_config(chi_prompt, variant="chunk_causal")
    cfg["model"].update(model=f"SanaMSVideoCamCtrlStreaming_Tiny_P1_D{C.DIT_CONFIG['num_layers']}",
                        chunk_size=STREAMING_CHUNK_SIZE, ffn_type="CachedGLUMBConvTemp",
                        pos_embed_type="casual_wan_rope")
    cfg["model"].pop("camctrl_type", None)
    cfg["vae"].update(vae_type="LTX2VAE_diffusers_causal",
                      vae_pretrained="hf://Efficient-Large-Model/SANA-WM_streaming/ltx2_causal_vae")
    cfg["scheduler"].update(inference_flow_shift=STREAMING_FLOW_SHIFT, vis_sampler="self_forcing_flow_euler")
    header = ("# Tiny random-weight test checkpoint written by sana_wm_core.testing.tiny.\n"
              "# Keys of NVlabs' configs/sana_wm/sana_wm_streaming_1600m_720p.yaml; sizes are the tiny model's.\n")
    path = Path(path)
    path.write_text(header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=4096), encoding="utf-8")
    return path


def write_streaming_layout(parts: Any, root: Path, chi_prompt: list[str]) -> None:
    from .tiny_build import build_refiner_parts
    from .tiny_causal_vae import write_causal_vae
    from .tiny_tokenizer import write_tokenizer

    from ..model.release import STREAMING_CONFIG

    write_streaming_dit(parts.transformer, root / C.STREAMING_DIT_FILE)
    write_streaming_config(root / STREAMING_CONFIG, chi_prompt)
    write_causal_vae(root / "ltx2_causal_vae")
    _, connectors, refiner = build_refiner_parts(parts.tokenizer, C.TINY_WEIGHTS_SEED + C.SEED_STREAMING_REFINER)
    refiner.save_pretrained(str(root / "refiner_diffusers" / "transformer"))
    connectors.save_pretrained(str(root / "refiner_diffusers" / "connectors"))
    parts.gemma3.save_pretrained(str(root / "gemma3_12b"))
    write_tokenizer(root / "gemma3_12b")


def load_streaming_bundle(models_dir: Path, device: str = "cpu") -> tuple[Any, Any, Any]:
    """(streaming DiT, causal `LTX2Vae`, `SanaWMRefiner` kept loaded) of the tiny bundle under the ComfyUI
    `models/` folder `models_dir` (`tiny.build_all`), in float32 on `device`: what the streaming tests and
    benchmark run."""
    import torch

    from ..model import load_transformer, read_release
    from ..refiner import RefinerOptions, SanaWMRefiner, locate_refiner
    from ..vae import LTX2Vae
    from ..weights.torch_pt import as_safetensors

    root = Path(models_dir) / C.STREAMING_REPO_DIR
    info = read_release(root)
    dit = load_transformer(as_safetensors(info.dit_path), dtype=torch.float32, overrides=info.model_overrides)
    vae = LTX2Vae.from_folder(root, dtype=torch.float32, device=device)
    vae.to_device()
    refiner = SanaWMRefiner(locate_refiner(root), device, RefinerOptions(dtype=torch.float32, keep_loaded=True))
    return dit.to(device), vae, refiner
