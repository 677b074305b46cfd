"""The weight files SANA-WM uses, as data: what each is, how big, which ComfyUI `models/` folder holds it
and which Hugging Face repo it comes from. Used by error messages, the README and the loader nodes.

Sizes come from the release's model card table (docs/pipeline_spec.md section 11.1) where it gives
them; "~" marks an estimate (parameter count x storage dtype, or a public mirror's file size).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownWeight:
    """One downloadable piece. `hub_paths` are paths/patterns inside `hub_repo` (empty = the whole repo);
    `models_folder` is where it lives under ComfyUI's `models/` (the repo's folder, mirrored as-is)."""

    key: str
    name: str
    what: str
    size: str
    models_folder: str
    hub_repo: str
    hub_paths: tuple[str, ...] = ()

    def local_path(self) -> str:
        """`models_folder` joined with the single file or folder this entry names, if it names one."""
        if len(self.hub_paths) == 1:
            return f"{self.models_folder}/{self.hub_paths[0].rstrip('*').rstrip('/')}"
        return self.models_folder


BIDIRECTIONAL_REPO = "Efficient-Large-Model/SANA-WM_bidirectional"
DIFFUSERS_REPO = "Efficient-Large-Model/SANA-WM_bidirectional-diffusers"
CHUNK_CAUSAL_REPO = "Efficient-Large-Model/SANA-WM_chunk_causal"
STREAMING_REPO = "Efficient-Large-Model/SANA-WM_streaming"
GEMMA2_REPO = "Efficient-Large-Model/gemma-2-2b-it"
PI3X_REPO = "yyfz233/Pi3X"

KNOWN_WEIGHTS: tuple[KnownWeight, ...] = (
    KnownWeight("dit", "dit/sana_wm_1600m_720p.safetensors",
                "Stage-1 SANA-WM DiT (2.6B params, fp32, original NVlabs key names)", "10 GB",
                "sana_wm/SANA-WM_bidirectional", BIDIRECTIONAL_REPO, ("dit/sana_wm_1600m_720p.safetensors",)),
    KnownWeight("vae", "vae/", "LTX-2 video VAE (diffusers AutoencoderKLLTX2Video)", "2 GB",
                "sana_wm/SANA-WM_bidirectional", BIDIRECTIONAL_REPO, ("vae/*",)),
    KnownWeight("config", "config.yaml", "inference config (flow shift, chi prompt, model switches)", "3 KB",
                "sana_wm/SANA-WM_bidirectional", BIDIRECTIONAL_REPO, ("config.yaml",)),
    KnownWeight("refiner", "refiner/transformer/ + refiner/connectors/",
                "Stage-2 LTX-2 refiner network and its text connectors (diffusers)", "38 GB",
                "sana_wm/SANA-WM_bidirectional", BIDIRECTIONAL_REPO,
                ("refiner/transformer/*", "refiner/connectors/*")),
    KnownWeight("refiner_text_encoder", "refiner/text_encoder/",
                "refiner prompt encoder Gemma-3-12B with its tokenizer (transformers)", "46 GB",
                "sana_wm/SANA-WM_bidirectional", BIDIRECTIONAL_REPO, ("refiner/text_encoder/*",)),
    KnownWeight("sana_wm_diffusers", "SANA-WM_bidirectional-diffusers/",
                "the same Stage-1 model in diffusers format (transformer, vae, Gemma-2 text encoder, "
                "tokenizer, scheduler) for SanaWMPipeline", "~17 GB",
                "sana_wm/SANA-WM_bidirectional-diffusers", DIFFUSERS_REPO),
    KnownWeight("chunk_causal", "dit/sana_wm_chunk_causal_1600m_720p.safetensors + config.yaml",
                "chunk-causal Stage-1 DiT (the autoregressive teacher, a research checkpoint that may show "
                "artifacts; same keys as the bidirectional DiT) and its config; VAE, refiner and Gemma come "
                "from the bidirectional repo and gemma-2-2b-it", "~10 GB",
                "sana_wm/SANA-WM_chunk_causal", CHUNK_CAUSAL_REPO,
                ("dit/sana_wm_chunk_causal_1600m_720p.safetensors", "config.yaml")),
    KnownWeight("streaming", "sana_dit/model.pt + ltx2_causal_vae/ + refiner_diffusers/ + gemma3_12b/",
                "the distilled streaming bundle: few-step chunk-causal Stage-1 DiT (a PyTorch training "
                "checkpoint, read with the safe loader and converted once to sana_dit/model.safetensors), the "
                "causal LTX-2 VAE, its refiner (transformer + connectors) and Gemma-3-12B; Gemma-2 comes from "
                "gemma-2-2b-it", "~96 GB+ (estimate; the .pt also holds training state)",
                "sana_wm/SANA-WM_streaming", STREAMING_REPO),
    KnownWeight("gemma2", "gemma-2-2b-it/", "Stage-1 prompt encoder Gemma-2-2B-IT with its tokenizer", "~5 GB",
                "text_encoders/gemma-2-2b-it", GEMMA2_REPO),
    KnownWeight("pi3x", "Pi3X", "Pi3X geometry model, estimates camera intrinsics when none are given",
                "~5.4 GB", "pi3x/Pi3X", PI3X_REPO),
)


def known_weight(key: str) -> KnownWeight:
    """The entry called `key` (ValueError listing the valid keys otherwise)."""
    for entry in KNOWN_WEIGHTS:
        if entry.key == key:
            return entry
    raise ValueError(f"unknown weight key {key!r}; known: {', '.join(e.key for e in KNOWN_WEIGHTS)}")


def known_for_repo(hub_repo: str) -> list[KnownWeight]:
    """Every entry downloaded from `hub_repo` (empty when the repo is not one SANA-WM knows)."""
    return [e for e in KNOWN_WEIGHTS if e.hub_repo.lower() == hub_repo.lower()]


def markdown_table() -> str:
    """The table for the README: one row per entry."""
    rows = ["| weights | what | size | ComfyUI folder | Hugging Face repo |", "|---|---|---|---|---|"]
    for e in KNOWN_WEIGHTS:
        rows.append(f"| `{e.name}` | {e.what} | {e.size} | `models/{e.local_path()}` | `{e.hub_repo}` |")
    return "\n".join(rows)
