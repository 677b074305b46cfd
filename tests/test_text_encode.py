"""Stage-1 prompt encoding equals diffusers' SanaWMPipeline.encode_prompt on tiny Gemma-2 weights."""
from __future__ import annotations

import pytest
import torch

import test_sampling_support as tiny
from sana_wm_core.text import CHI_PROMPT_LINES, GemmaPromptEncoder, chi_from_config


def _oracle(prompt: str, negative: str = ""):
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import DEFAULT_CHI_PROMPT

    pipe = tiny.pipeline()
    return pipe.encode_prompt(prompt, negative, device=torch.device("cpu"), chi_prompt=DEFAULT_CHI_PROMPT)


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    """The tiny Gemma-2 saved as a Hugging Face folder, the way models/text_encoders/ holds it."""
    d = tmp_path_factory.mktemp("gemma-2-2b-it")
    tok, model = tiny.gemma2()
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_chi_prefix_is_the_released_one():
    from diffusers.pipelines.sana_wm.pipeline_sana_wm import DEFAULT_CHI_PROMPT

    assert list(CHI_PROMPT_LINES) == list(DEFAULT_CHI_PROMPT)
    assert chi_from_config({"text_encoder": {"chi_prompt": ["a", "b"]}}) == ("a", "b")
    assert chi_from_config({}) == CHI_PROMPT_LINES


@pytest.mark.parametrize("prompt,negative", [(tiny.PROMPT, ""), ("short", "blurry, low quality"),
                                             ("x" * 400, "")])
def test_encode_matches_pipeline(gemma_dir, prompt, negative):
    enc = GemmaPromptEncoder.from_folder(gemma_dir, dtype=torch.float32, device="cpu")
    ours = enc.encode(prompt, negative)
    cond, cmask, neg, nmask = _oracle(prompt, negative)
    assert ours.embeds.shape == cond.shape == (1, 1, 300, 64)
    assert torch.equal(ours.mask, cmask) and torch.equal(ours.negative_mask, nmask)
    assert torch.allclose(ours.embeds, cond, atol=1e-6, rtol=0)
    assert torch.allclose(ours.negative_embeds, neg, atol=1e-6, rtol=0)
    # kept window = BOS + last chi token + prompt (truncated for long prompts) + right padding
    n_prompt = min(len(prompt), 298)
    assert int(cmask.sum()) == 2 + n_prompt
    assert int(nmask.sum()) == 1 + len(negative)


def test_encoder_offload_and_free(gemma_dir):
    enc = GemmaPromptEncoder.from_folder(gemma_dir, dtype=torch.float32, device="cpu")
    with enc.on_device() as e:
        a = e.encode("a red door")
    b = enc.encode("a red door")
    assert torch.equal(a.embeds, b.embeds)
    enc.free()
    assert enc.model is None
    c = enc.encode("a red door")  # a folder-loaded encoder reloads (ComfyUI reuses the cached loader output)
    assert enc.model is not None and torch.equal(a.embeds, c.embeds)
    bare = GemmaPromptEncoder(enc.tokenizer, enc.model, device="cpu")
    bare.free()
    with pytest.raises(RuntimeError, match="freed"):
        bare.encode("a red door")


def test_bad_inputs(gemma_dir, tmp_path):
    enc = GemmaPromptEncoder.from_folder(gemma_dir, dtype=torch.float32, device="cpu")
    with pytest.raises(ValueError, match="prompt is empty"):
        enc.encode("   ")
    with pytest.raises(FileNotFoundError, match="gemma-2-2b-it"):
        GemmaPromptEncoder.from_folder(tmp_path / "nothing")


def test_diffusers_layout_folder_gives_same_embeddings(tiny_models):
    """The text encoder loads from models/text_encoders/gemma-2-2b-it and from a diffusers SANA-WM folder."""
    a = GemmaPromptEncoder.from_folder(tiny_models / "text_encoders" / "gemma-2-2b-it", dtype=torch.float32,
                                       device="cpu").encode("a red door")
    b = GemmaPromptEncoder.from_folder(tiny_models / "sana_wm" / "SANA-WM_bidirectional-diffusers",
                                       dtype=torch.float32, device="cpu").encode("a red door")
    assert torch.equal(a.mask, b.mask) and torch.allclose(a.embeds, b.embeds, atol=1e-6)


def test_release_chi_prompt_reaches_the_encoder(gemma_dir, tmp_path):
    """A release whose config.yaml carries its own chi lines: read_release reads them and the encoder
    prefixes the prompt with them, equal to diffusers' encode_prompt given the same lines."""
    from sana_wm_core.model import read_release
    from sana_wm_core.testing.tiny_release import write_release_config

    lines = ["Describe the scene below in vivid detail:", "User Prompt: "]
    (tmp_path / "dit").mkdir()
    (tmp_path / "dit" / "sana_wm_1600m_720p.safetensors").write_bytes(b"")   # read_release only locates it
    write_release_config(tmp_path / "config.yaml", lines)
    rel = read_release(tmp_path)
    assert rel.chi_prompt == tuple(lines)
    enc = GemmaPromptEncoder.from_folder(gemma_dir, dtype=torch.float32, device="cpu")
    ours = enc.encode(tiny.PROMPT, chi_prompt=rel.chi_prompt)
    assert ours.chi_prompt == tuple(lines)
    cond, cmask, _, _ = tiny.pipeline().encode_prompt(tiny.PROMPT, "", device=torch.device("cpu"), chi_prompt=lines)
    assert torch.equal(ours.mask, cmask) and torch.allclose(ours.embeds, cond, atol=1e-6, rtol=0)
    default = enc.encode(tiny.PROMPT)
    assert default.chi_prompt == CHI_PROMPT_LINES and not torch.allclose(default.embeds, ours.embeds)
