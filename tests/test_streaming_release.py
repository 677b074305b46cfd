"""Loading SANA-WM_streaming as released (tiny bundle in the same layout): `sana_dit/model.pt` is read with
PyTorch's safe loader only (a pickle that would run code is refused, and nothing in it runs), converted once
to a memory-mapped safetensors file that later loads use, and gives the chunk-causal DiT the streaming
sampler runs."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from sana_wm_core.model import SanaWMConfig, load_transformer, read_release
from sana_wm_core.model.release import STREAMING_CONFIG
from sana_wm_core.sampling import is_chunk_causal
from sana_wm_core.testing import tiny_config as C
from sana_wm_core.weights import torch_pt
from sana_wm_core.weights.safetensors_file import open_safetensors


@pytest.fixture()
def bundle(tiny_models, tmp_path) -> Path:
    """A private copy of the tiny bundle's DiT folder (conversions write next to the .pt)."""
    root = tmp_path / "SANA-WM_streaming"
    # only the .pt: a server test may already have converted the shared tiny bundle's copy
    shutil.copytree(tiny_models / C.STREAMING_REPO_DIR / "sana_dit", root / "sana_dit",
                    ignore=shutil.ignore_patterns("*.safetensors", "*.partial"))
    shutil.copy(tiny_models / C.STREAMING_REPO_DIR / STREAMING_CONFIG, root / STREAMING_CONFIG)
    return root


def test_the_bundle_has_the_release_layout(tiny_models):
    root = tiny_models / C.STREAMING_REPO_DIR
    for rel in [C.STREAMING_DIT_FILE, "ltx2_causal_vae/config.json", "ltx2_causal_vae/diffusion_pytorch_model.safetensors",
                "refiner_diffusers/transformer/config.json", "refiner_diffusers/connectors/config.json",
                "gemma3_12b/config.json", "gemma3_12b/tokenizer.json"]:
        assert (root / rel).is_file(), rel
    raw = torch.load(root / C.STREAMING_DIT_FILE, map_location="cpu", mmap=True, weights_only=True)
    assert set(raw) == {"generator", "critic", "step"} and all(k.startswith("model.") for k in raw["generator"])
    from sana_wm_core.vae import LTX2Vae

    assert LTX2Vae.from_folder(root).is_causal                     # the bundle root finds ltx2_causal_vae/


def test_the_pt_loads_safely_as_the_chunk_causal_dit(tiny_models, bundle):
    info = read_release(bundle)
    assert (info.layout, info.sampler, info.chunk_size) == ("streaming", "self_forcing", 3)
    assert info.dit_path == bundle / C.STREAMING_DIT_FILE
    dit = load_transformer(info.dit_path, overrides=info.model_overrides)      # strict key + shape check inside
    assert is_chunk_causal(dit) and dit.config.chunk_size == 3
    plain = load_transformer(tiny_models / C.ORIGINAL_REPO_DIR / C.DIT_FILE)
    a, b = dit.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)   # the generator, not the critic


def test_the_hub_layout_has_no_config_and_still_reads_as_streaming(tiny_models, bundle):
    """The hub repo holds no `sana_wm_streaming_1600m_720p.yaml` (autoregressive_spec.md §1.2): without it the
    release settings are the streaming defaults, and every DiT size is read from the tensors except the
    cross-attention heads, which no tensor shows. The released size knows its 20 (KNOWN_CROSS_HEADS); the tiny
    size is no released one, so it needs the count given (why the tiny bundle carries the config)."""
    with_config = read_release(bundle)
    (bundle / STREAMING_CONFIG).unlink()
    info = read_release(bundle)
    assert (info.layout, info.chunk_size, info.sampler, info.flow_shift) == ("streaming", 3, "self_forcing", 8.0)
    assert info.chunk_split_strategy == "first_chunk_plus_one" and info.dit_path == bundle / C.STREAMING_DIT_FILE
    assert info.chi_prompt == with_config.chi_prompt and info.cross_heads is None
    assert info.model_overrides == {"chunk_size": 3, "chunk_split_strategy": "first_chunk_plus_one",
                                    "release_sampler": "self_forcing"}
    with pytest.raises(ValueError, match="cross-attention head count.*not a released size") as err:
        load_transformer(info.dit_path, overrides=info.model_overrides)
    assert "num_attention_heads" in str(err.value)
    heads = C.DIT_CONFIG["num_attention_heads"]
    dit = load_transformer(info.dit_path, overrides={**info.model_overrides, "num_attention_heads": heads})
    ref = load_transformer(tiny_models / C.ORIGINAL_REPO_DIR / C.DIT_FILE)
    assert is_chunk_causal(dit) and dit.config == SanaWMConfig(**{**ref.config.to_dict(), "chunk_size": 3,
                                                                  "release_sampler": "self_forcing"})
    a, b = dit.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _RunsCode:
    """Unpickling this calls Path.touch on the marker: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pt_that_needs_unpickling_is_refused_and_runs_nothing(bundle, tmp_path):
    pt = bundle / "sana_dit" / "evil.pt"
    marker = tmp_path / "code-ran"
    sd = torch.load(bundle / "sana_dit" / "model.pt", weights_only=True)["generator"]
    torch.save({"generator": sd, "hook": _RunsCode(marker)}, pt)
    for call in (lambda: load_transformer(pt), lambda: torch_pt.as_safetensors(pt),
                 lambda: read_release(pt) and load_transformer(read_release(pt).dit_path)):
        with pytest.raises(torch_pt.UnsafeCheckpointError, match="refused: reading it needs arbitrary unpickling") as e:
            call()
        assert "--trust-pickle" in str(e.value) and "evil.safetensors" in str(e.value)
    assert not marker.exists() and not (bundle / "sana_dit" / "evil.safetensors").exists()
    # the way out the message names: a person vouches for the file, the CLI converts it, then it loads safely
    assert torch_pt.main(["--trust-pickle", str(pt)]) == 0 and marker.exists()
    assert torch.equal(load_transformer(pt).state_dict()["x_embedder.proj.weight"],
                       load_transformer(bundle / "sana_dit" / "model.pt").state_dict()["x_embedder.proj.weight"])


def test_conversion_round_trip_and_memory_mapped_reloads(bundle, monkeypatch):
    pt = bundle / "sana_dit" / "model.pt"
    assert read_release(bundle).dit_path == pt and torch_pt.find_converted(pt) is None
    out = torch_pt.as_safetensors(pt)
    assert out == bundle / "sana_dit" / "model.safetensors"
    want = torch_pt.load_pt_state_dict(pt)
    assert "critic" not in str(list(want)) and not any(k.startswith("model.") for k in want)
    with open_safetensors(out) as f:                                     # the header check runs too
        assert sorted(f.keys()) == sorted(want)
        assert all(torch.equal(f.get_tensor(k), want[k]) for k in want)
    stamp = out.stat().st_mtime_ns
    assert torch_pt.as_safetensors(pt) == out and out.stat().st_mtime_ns == stamp   # once only
    info = read_release(bundle)
    assert info.dit_path == out                                         # later loads take the safetensors file
    a = load_transformer(info.dit_path, overrides=info.model_overrides).state_dict()
    b = load_transformer(pt, overrides=info.model_overrides).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a replaced .pt makes the conversion stale: it is made again
    os.utime(pt, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    assert torch_pt.find_converted(pt) is None and read_release(bundle).dit_path == pt
    assert torch_pt.as_safetensors(pt) == out and torch_pt.find_converted(pt) == out


def test_conversion_falls_back_to_the_cache_folder(bundle, tmp_path, monkeypatch):
    """Where the .pt's own folder cannot take the file (here: the name is taken by a folder), the cache does."""
    monkeypatch.setenv("SANA_WM_CACHE_DIR", str(tmp_path / "cache"))
    pt = bundle / "sana_dit" / "model.pt"
    (bundle / "sana_dit" / "model.safetensors").mkdir()
    out = torch_pt.as_safetensors(pt)
    assert out.is_relative_to(tmp_path / "cache") and torch_pt.find_converted(pt) == out
    assert not list((bundle / "sana_dit").glob("*.partial"))


def test_a_damaged_pt_names_the_file(bundle):
    pt = bundle / "sana_dit" / "model.pt"
    data = pt.read_bytes()
    pt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.pt"):
        load_transformer(pt)
