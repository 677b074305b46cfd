"""Refiner loading: the release's folder layouts, fp8 storage, block offload, and clear errors."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from sana_wm_core.refiner import RefinerOptions, SanaWMRefiner, locate_refiner
from sana_wm_core.runtime.fp8 import Fp8Linear
from sana_wm_core.refiner.loading import load_refiner_transformer, load_text_encoder
from sana_wm_core.testing.tiny_refiner import build_tiny_refiner

PROMPT = "A car driving across a desert."


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A ComfyUI-style models/ folder: sana_wm/SANA-WM_bidirectional/refiner/{transformer,connectors,...}."""
    root = tmp_path_factory.mktemp("models")
    build_tiny_refiner(root / "sana_wm" / "SANA-WM_bidirectional" / "refiner")
    return root


@pytest.fixture(scope="module")
def release(models):
    return models / "sana_wm" / "SANA-WM_bidirectional"


@pytest.fixture(scope="module")
def oracle(release):
    """diffusers' own refiner loaded from the same folder (from_pretrained of each component)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SanaWMLTX2RefinerTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.sana_wm.refiner import SanaWMLTX2Refiner
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    ref = release / "refiner"
    pipe = SanaWMLTX2Refiner(
        transformer=SanaWMLTX2RefinerTransformer3DModel.from_pretrained(ref / "transformer"),
        connectors=LTX2TextConnectors.from_pretrained(ref / "connectors"),
        tokenizer=AutoTokenizer.from_pretrained(ref / "tokenizer"),
        text_encoder=Gemma3ForConditionalGeneration.from_pretrained(ref / "text_encoder"),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=None, text_max_sequence_length=128,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _lat(frames=7):
    return torch.randn(1, 16, frames, 3, 4, generator=torch.Generator().manual_seed(5))


def _ref(oracle, lat):
    return oracle(lat, PROMPT, fps=16, generator=torch.Generator().manual_seed(42), output_type="latent")


def test_official_layout_by_repo_name_matches_diffusers(models, oracle):
    paths = locate_refiner("SANA-WM_bidirectional", [models / "sana_wm"])
    assert paths.transformer.name == "transformer" and paths.text_encoder.name == "text_encoder"
    assert paths.tokenizer.name == "tokenizer" and paths.text_max_length == 128
    refiner = SanaWMRefiner(paths, "cpu", RefinerOptions(dtype=torch.float32))
    lat = _lat()
    out = refiner.refine(lat, PROMPT, seed=42, fps=16)
    assert (out - _ref(oracle, lat)).abs().max().item() == 0.0
    assert torch.equal(out[:, :, :1], lat[:, :, :1])
    assert refiner._transformer is None                                  # freed after use (keep_loaded=False)


def test_refine_latent_reads_fps_and_prompt_from_the_latent(models, oracle):
    """The `SanaWMLatent` path: the latent's own fps drives the temporal RoPE (diffusers given the same fps),
    an empty prompt means the Stage-1 prompt it carries, and the result is the refined value."""
    from sana_wm_core.latent import SanaWMLatent

    refiner = SanaWMRefiner(locate_refiner("SANA-WM_bidirectional", [models / "sana_wm"]), "cpu",
                            RefinerOptions(dtype=torch.float32, keep_loaded=True))
    lat = _lat()
    value = SanaWMLatent(samples=lat, num_frames=49, fps=24.0, prompt=PROMPT, generation={"seed": 0})
    out = refiner.refine_latent(value, "", seed=42)
    ref24 = oracle(lat, PROMPT, fps=24, generator=torch.Generator().manual_seed(42), output_type="latent")
    assert isinstance(out, SanaWMLatent) and out.refined and out.drop_first_frames == 1
    assert (out.samples - ref24).abs().max().item() == 0.0
    assert (out.samples - _ref(oracle, lat)).abs().max().item() > 0          # fps 16 would differ
    assert out.fps == 24.0 and out.generation == {"seed": 0, "refine_seed": 42} and out.prompt == PROMPT
    with pytest.raises(ValueError, match="already refined"):
        refiner.refine_latent(out, "again", seed=1)
    with pytest.raises(ValueError, match="prompt is empty"):
        refiner.refine_latent(SanaWMLatent(samples=lat, num_frames=49), "  ", seed=1)
    refiner.free()


def test_hub_id_and_direct_folder_resolve(models, release):
    by_hub = locate_refiner("Efficient-Large-Model/SANA-WM_bidirectional", [models / "sana_wm"])
    direct = locate_refiner(release / "refiner")
    assert by_hub.root == direct.root == (release / "refiner").resolve()


def test_tokenizer_reload_keeps_bos_and_pad(release):
    from sana_wm_core.refiner.loading import load_tokenizer
    from sana_wm_core.testing.tiny_refiner import tiny_tokenizer

    tok = load_tokenizer(release / "refiner" / "tokenizer")
    assert tok("ab").input_ids == tiny_tokenizer()("ab").input_ids and tok("ab").input_ids[0] == tok.bos_token_id
    assert tok.pad_token == "<pad>"


def test_only_the_video_branch_is_materialised(release):
    net = load_refiner_transformer(release / "refiner" / "transformer", torch.float32)
    assert net.proj_in.weight.device.type == "cpu"
    assert net.audio_proj_in.weight.device.type == "meta"
    assert net.transformer_blocks[0].attn1.to_q.weight.device.type == "cpu"
    assert net.transformer_blocks[0].audio_attn1.to_q.weight.device.type == "meta"


def test_fp8_storage_runs_close_to_full_precision(models, oracle):
    paths = locate_refiner("SANA-WM_bidirectional", [models / "sana_wm"])
    refiner = SanaWMRefiner(paths, "cpu", RefinerOptions(dtype=torch.float32, fp8=True, keep_loaded=True))
    net = refiner.network()
    fp8 = [m for m in net.modules() if isinstance(m, Fp8Linear)]
    assert len(fp8) == 2 * (4 + 4 + 2)                                   # attn1, attn2 (q,k,v,out) + ff x 2 blocks
    assert fp8[0].weight_fp8.dtype == torch.float8_e4m3fn
    lat = _lat()
    out = refiner.refine(lat, PROMPT, seed=42, fps=16)
    ref = _ref(oracle, lat)
    err = (out - ref).abs().max().item()
    assert torch.isfinite(out).all() and 0 < err < 0.05 * ref.abs().max().item()
    assert torch.equal(out[:, :, :1], lat[:, :, :1])
    refiner.free()


def test_block_offload_is_exact_and_streams(models, oracle):
    paths = locate_refiner("SANA-WM_bidirectional", [models / "sana_wm"])
    refiner = SanaWMRefiner(paths, "cpu", RefinerOptions(dtype=torch.float32, offload_blocks=1, keep_loaded=True))
    lat = _lat(11)
    out = refiner.refine(lat, PROMPT, seed=42, fps=16)
    assert (out - _ref(oracle, lat)).abs().max().item() == 0.0
    # 4 chunks x (3 steps + 1 capture) + the sink capture, one streamed block each
    assert refiner.offloader.loads == 4 * 4 + 1
    refiner.free()


def test_streaming_layout_and_separate_gemma_folder(tmp_path, release):
    repo = tmp_path / "SANA-WM_streaming"
    shutil.copytree(release / "refiner" / "transformer", repo / "refiner_diffusers" / "transformer")
    shutil.copytree(release / "refiner" / "connectors", repo / "refiner_diffusers" / "connectors")
    shutil.copytree(release / "refiner" / "text_encoder", repo / "gemma3_12b")
    shutil.copytree(release / "refiner" / "tokenizer", repo / "gemma3_12b", dirs_exist_ok=True)
    paths = locate_refiner(repo)
    assert paths.root.name == "refiner_diffusers" and paths.text_encoder == (repo / "gemma3_12b").resolve()
    assert paths.tokenizer == paths.text_encoder
    own = locate_refiner(release, gemma_dir=repo / "gemma3_12b")
    assert own.text_encoder == repo / "gemma3_12b" and own.transformer == (release / "refiner" / "transformer")


def test_fp8_gemma_folder_loads(tmp_path, release):
    """A user's fp8 (scaled) Gemma-3 folder is dequantised on load and encodes like the bf16 original."""
    from safetensors.torch import load_file, save_file

    src = release / "refiner" / "text_encoder"
    dst = tmp_path / "gemma3_fp8"
    shutil.copytree(src, dst)
    sd = load_file(str(dst / "model.safetensors"))
    out = {}
    for k, v in sd.items():
        if v.ndim == 2 and k.endswith("proj.weight"):
            scale = v.abs().amax() / 448.0
            out[k] = (v / scale).to(torch.float8_e4m3fn)
            out[k[: -len("weight")] + "weight_scale"] = scale.reshape(())
        else:
            out[k] = v
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})
    fp8 = load_text_encoder(dst, torch.float32)
    full = load_text_encoder(src, torch.float32)
    key = "model.language_model.layers.0.mlp.gate_proj.weight"
    a, b = dict(fp8.named_parameters())[key], dict(full.named_parameters())[key]
    assert a.dtype == torch.float32 and 0 < (a - b).abs().max() < 0.1 * b.abs().max()


def test_missing_folder_lists_where_it_looked(models):
    with pytest.raises(FileNotFoundError) as exc:
        locate_refiner("SANA-WM_nope", [models / "sana_wm"])
    msg = str(exc.value)
    assert str(models / "sana_wm" / "SANA-WM_nope") in msg and "refiner" in msg
    assert "huggingface-cli download Efficient-Large-Model/SANA-WM_bidirectional" in msg


def test_missing_gemma_folder_is_named(release, tmp_path):
    with pytest.raises(FileNotFoundError, match="Gemma-3 text encoder"):
        locate_refiner(release, gemma_dir=tmp_path / "no_gemma")


def test_mismatched_checkpoint_names_missing_keys(tmp_path, release):
    from safetensors.torch import load_file, save_file

    dst = tmp_path / "transformer"
    shutil.copytree(release / "refiner" / "transformer", dst)
    sd = load_file(str(dst / "diffusion_pytorch_model.safetensors"))
    sd = {k.replace("proj_in.", "patchify_proj."): v for k, v in sd.items()}       # original LTX-2 key name
    save_file(sd, str(dst / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match=r"missing keys .*proj_in\.weight.*unexpected .*patchify_proj"):
        load_refiner_transformer(dst, torch.float32)


def test_wrong_latent_channels_fail_before_loading(models):
    refiner = SanaWMRefiner(locate_refiner("SANA-WM_bidirectional", [models / "sana_wm"]), "cpu",
                            RefinerOptions(dtype=torch.float32))
    with pytest.raises(ValueError, match="128 channels but the refiner expects 16"):
        refiner.refine(torch.zeros(1, 128, 5, 3, 4), PROMPT, seed=0, fps=16)
    assert refiner._transformer is None and not refiner._prompt_cache


def test_config_json_is_read(release):
    cfg = json.loads((release / "refiner" / "transformer" / "config.json").read_text())
    assert cfg["_class_name"] == "SanaWMLTX2RefinerTransformer3DModel" and cfg["in_channels"] == 16
