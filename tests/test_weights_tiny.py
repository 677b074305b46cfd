"""Tiny checkpoints: deterministic bytes, official layouts, and every part loads back with the
library (or project) code that owns its format. Offline: conftest sets HF_HUB_OFFLINE=1."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sana_wm_core.testing import tiny
from sana_wm_core.testing import tiny_config as C
from sana_wm_core.testing.tiny_tokenizer import tiny_vocab

ORIG = C.ORIGINAL_REPO_DIR
DIFF = C.DIFFUSERS_REPO_DIR


def _digest(root: Path) -> dict[str, str]:
    """Every written file's hash; the streaming DiT's safetensors conversion is not written by the build (a
    loader makes it beside the .pt on first use, e.g. in a server test before this one)."""
    converted = root / C.STREAMING_REPO_DIR / "sana_dit" / "model.safetensors"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p != converted}


def test_tiny_sizes_fit_the_vae_strides():
    assert C.TINY_HEIGHT % C.TINY_VAE_SPATIAL_STRIDE == 0
    assert C.TINY_WIDTH % C.TINY_VAE_SPATIAL_STRIDE == 0
    assert (C.TINY_NUM_FRAMES - 1) % C.TINY_VAE_TEMPORAL_STRIDE == 0
    assert tiny.TINY_HEIGHT == C.TINY_HEIGHT and tiny.TINY_WIDTH == C.TINY_WIDTH


def test_build_is_deterministic_and_leaves_global_rng_alone(tiny_models, tmp_path, capsys):
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    assert tiny.main([str(tmp_path)]) == 0  # the CLI entry point, in-process
    assert torch.equal(torch.rand(3), expected_next), "build_all must not consume the caller's torch RNG"
    printed = capsys.readouterr().out
    assert "sana_wm_diffusers" in printed and str(tmp_path) in printed
    first, second = _digest(tiny_models), _digest(tmp_path)
    assert sorted(first) == sorted(second)
    assert first == second, [k for k in first if first[k] != second[k]]


def test_layout_matches_the_release(tiny_models):
    orig, diff = tiny_models / ORIG, tiny_models / DIFF
    for rel in [C.DIT_FILE, "config.yaml", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
                "refiner/transformer/config.json", "refiner/transformer/diffusion_pytorch_model.safetensors",
                "refiner/connectors/config.json", "refiner/connectors/diffusion_pytorch_model.safetensors",
                "refiner/text_encoder/config.json", "refiner/text_encoder/model.safetensors",
                "refiner/text_encoder/tokenizer.json", "refiner/text_encoder/tokenizer_config.json"]:
        assert (orig / rel).is_file(), rel
    for sub in ["transformer", "vae", "text_encoder", "tokenizer", "scheduler"]:
        assert (diff / sub).is_dir(), sub
    index = json.loads((diff / "model_index.json").read_text())
    assert index["_class_name"] == "SanaWMPipeline"
    gemma = tiny_models / C.GEMMA2_DIR
    for rel in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json"]:
        assert (gemma / rel).is_file(), rel
    # Same VAE bytes in both layouts.
    a = (orig / "vae/diffusion_pytorch_model.safetensors").read_bytes()
    assert a == (diff / "vae/diffusion_pytorch_model.safetensors").read_bytes()


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    real = tmp_path / ORIG
    real.mkdir(parents=True)
    (real / "precious.safetensors").write_bytes(b"real weights")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        tiny.build_all(tmp_path)
    assert (real / "precious.safetensors").read_bytes() == b"real weights"
    assert not (tmp_path / DIFF).exists(), "nothing may be written when one target is foreign"


def _oracle_tokenizer():
    from transformers import GemmaTokenizer

    return GemmaTokenizer(vocab=tiny_vocab(), merges=[], add_bos_token=True)


@pytest.mark.parametrize("folder", [C.GEMMA2_DIR, f"{DIFF}/tokenizer", f"{ORIG}/refiner/text_encoder"])
def test_tokenizer_files_match_the_oracle_tokenizer(tiny_models, folder):
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import DEFAULT_CHI_PROMPT
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models / folder), local_files_only=True)
    ref = _oracle_tokenizer()
    assert len(tok) == len(ref) == 361
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2)
    texts = ["A car driving across a vast desert plain at golden hour.", "  two  spaces ", "",
             "\n".join(DEFAULT_CHI_PROMPT) + "A cat", "naïve 日本 émoji 🙂 <bos> <start_of_turn>\t"]
    for text in texts:
        ids = tok(text).input_ids
        assert ids[0] == 2 and ids == ref(text).input_ids, text
        assert tok.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)
        for side in ("left", "right"):
            a = tok([text], padding="max_length", max_length=64, truncation=True, padding_side=side)
            b = ref([text], padding="max_length", max_length=64, truncation=True, padding_side=side)
            assert a.input_ids == b.input_ids and a.attention_mask == b.attention_mask


def test_gemma2_folder_loads_as_model_and_causal_lm(tiny_models):
    from transformers import AutoModelForCausalLM, Gemma2Model

    folder = str(tiny_models / C.GEMMA2_DIR)
    enc = Gemma2Model.from_pretrained(folder, local_files_only=True).eval()
    dec = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).get_decoder().eval()
    same = Gemma2Model.from_pretrained(str(tiny_models / DIFF / "text_encoder"), local_files_only=True).eval()
    assert enc.config.hidden_size == C.DIT_CONFIG["caption_channels"]
    ids = torch.tensor([[2, 40, 41, 42, 266, 43]])
    with torch.no_grad():
        out = enc(ids).last_hidden_state
        assert out.shape == (1, 6, C.GEMMA2_CONFIG["hidden_size"])
        assert torch.equal(out, dec(ids).last_hidden_state)
        assert torch.equal(out, same(ids).last_hidden_state), "both layouts must hold the same Gemma-2"


def _image() -> Image.Image:
    rng = np.random.RandomState(0)
    return Image.fromarray(rng.randint(0, 255, (120, 200, 3), dtype=np.uint8), "RGB")


def test_diffusers_layout_runs_one_step_and_equals_the_in_memory_build(tiny_models):
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import SanaWMPipeline
    from transformers import AutoTokenizer

    from sana_wm_core.testing.tiny_build import build_components

    pipe = SanaWMPipeline.from_pretrained(str(tiny_models / DIFF), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.scheduler.config.shift == C.TINY_FLOW_SHIFT
    kwargs = dict(image=_image(), prompt="a road", action="w-8", intrinsics=[150.0, 150.0, 100.0, 60.0],
                  height=C.TINY_HEIGHT, width=C.TINY_WIDTH, num_frames=9, num_inference_steps=1,
                  guidance_scale=5.0, output_type="latent")
    out = pipe(**kwargs, generator=torch.Generator().manual_seed(0))
    assert out.latent.shape == (1, C.LATENT_CHANNELS, 2, C.TINY_HEIGHT // 32, C.TINY_WIDTH // 32)
    assert torch.isfinite(out.latent).all()

    tok = AutoTokenizer.from_pretrained(str(tiny_models / C.GEMMA2_DIR), local_files_only=True)
    parts = build_components(tok)
    mem = SanaWMPipeline(tokenizer=tok, text_encoder=parts.gemma2, vae=parts.vae, transformer=parts.transformer,
                         scheduler=parts.scheduler)
    mem.set_progress_bar_config(disable=True)
    ref = mem(**kwargs, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.latent, ref.latent)
    assert "plucker_embedder.proj.weight" in parts.dit_zero_filled
    assert any(name.endswith("attn.conv_k.weight") for name in parts.dit_zero_filled)


def test_refiner_folders_load_and_refine(tiny_models):
    from diffusers import (AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           SanaWMLTX2RefinerTransformer3DModel)
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.sana_wm.refiner import SanaWMLTX2Refiner
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    ref = tiny_models / ORIG / "refiner"
    refiner = SanaWMLTX2Refiner(
        transformer=SanaWMLTX2RefinerTransformer3DModel.from_pretrained(str(ref / "transformer")),
        connectors=LTX2TextConnectors.from_pretrained(str(ref / "connectors")),
        text_encoder=Gemma3ForConditionalGeneration.from_pretrained(
            str(ref / "text_encoder"), local_files_only=True, attn_implementation="eager"),
        tokenizer=AutoTokenizer.from_pretrained(str(ref / "text_encoder"), local_files_only=True),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=AutoencoderKLLTX2Video.from_pretrained(str(tiny_models / ORIG / "vae")),
        text_max_sequence_length=C.TINY_REFINER_TEXT_MAX_LEN,
    )
    refiner.set_progress_bar_config(disable=True)
    latent = torch.randn(1, C.LATENT_CHANNELS, 3, 3, 4, generator=torch.Generator().manual_seed(1))
    out = refiner(latent, "a road", fps=16, generator=torch.Generator().manual_seed(42), output_type="latent")
    out = out if torch.is_tensor(out) else out.frames
    assert out.shape == latent.shape and torch.equal(out[:, :, :1], latent[:, :, :1])
    assert not torch.equal(out[:, :, 1:], latent[:, :, 1:])


def test_refiner_folder_is_found_by_the_project_loader(tiny_models):
    loading = pytest.importorskip("sana_wm_core.refiner.loading")
    paths = loading.locate_refiner("SANA-WM_bidirectional", [tiny_models / "sana_wm"])
    root = (tiny_models / ORIG / "refiner").resolve()
    assert paths.root.resolve() == root
    assert paths.text_encoder.resolve() == (root / "text_encoder")
    assert paths.tokenizer.resolve() == (root / "text_encoder")
    assert paths.text_max_length == C.TINY_REFINER_TEXT_MAX_LEN


def test_config_yaml_has_the_release_keys_and_the_tiny_values(tiny_models):
    import yaml
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import DEFAULT_CHI_PROMPT

    cfg = yaml.safe_load((tiny_models / ORIG / "config.yaml").read_text())
    assert list(cfg) == ["model", "vae", "text_encoder", "scheduler"]
    model, vae, text, sched = cfg["model"], cfg["vae"], cfg["text_encoder"], cfg["scheduler"]
    assert model["linear_head_dim"] == C.DIT_CONFIG["linear_head_dim"]
    assert model["softmax_every_n"] == C.DIT_CONFIG["softmax_every_n"]
    assert model["chunk_plucker_post_attn_blocks"] == C.DIT_CONFIG["num_layers"]
    assert model["chunk_plucker_channels"] == 48 and model["mlp_acts"] == ["silu", "silu", None]
    vae_cfg = json.loads((tiny_models / ORIG / "vae/config.json").read_text())
    assert vae["vae_latent_dim"] == vae_cfg["latent_channels"] == C.LATENT_CHANNELS
    assert vae["vae_stride"] == [vae_cfg["temporal_compression_ratio"], vae_cfg["spatial_compression_ratio"],
                                 vae_cfg["spatial_compression_ratio"]]
    assert text["text_encoder_name"] == "gemma-2-2b-it" and text["model_max_length"] == 300
    assert text["chi_prompt"] == list(DEFAULT_CHI_PROMPT) and text["chi_prompt"][-1] == "User Prompt: "
    sched_cfg = json.loads((tiny_models / DIFF / "scheduler/scheduler_config.json").read_text())
    assert sched["inference_flow_shift"] == sched["flow_shift"] == sched_cfg["shift"] == C.TINY_FLOW_SHIFT
