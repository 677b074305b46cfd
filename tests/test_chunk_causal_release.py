"""Loading SANA-WM_chunk_causal as released (tiny checkpoint in the same layout): the DiT file + config.yaml
give a chunk-causal DiT with the config's chunk_size / split strategy, flow shift and sampler."""
from __future__ import annotations

import pytest
import torch
import yaml

from sana_wm_core.model import load_transformer, read_release
from sana_wm_core.sampling import is_chunk_causal
from sana_wm_core.testing import tiny_config as C


def test_the_release_folder_says_chunk_causal(tiny_models):
    root = tiny_models / C.CHUNK_CAUSAL_REPO_DIR
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                  and not p.name.startswith(".")) == ["config.yaml", C.CHUNK_CAUSAL_DIT_FILE]
    info = read_release(root)
    assert info.layout == "original" and info.dit_path == root / C.CHUNK_CAUSAL_DIT_FILE
    assert (info.chunk_size, info.chunk_split_strategy, info.sampler) == (C.TINY_CHUNK_SIZE, "first_chunk_plus_one",
                                                                          "chunk_flow_euler")
    assert info.flow_shift == C.TINY_FLOW_SHIFT
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    assert cfg["model"]["attn_type"] == "ChunkCausalGDNTriton" and cfg["scheduler"]["vis_sampler"] == "chunk_flow_euler"
    bidir = read_release(tiny_models / C.ORIGINAL_REPO_DIR)
    assert (bidir.chunk_size, bidir.sampler) == (None, "flow_euler_ltx")
    assert bidir.model_overrides == {"num_attention_heads": C.DIT_CONFIG["num_attention_heads"],   # model.num_heads
                                     "release_sampler": "flow_euler_ltx"}


def test_the_dit_loads_strictly_and_knows_it_is_chunk_causal(tiny_models):
    info = read_release(tiny_models / C.CHUNK_CAUSAL_REPO_DIR)
    dit = load_transformer(info.dit_path, overrides=info.model_overrides)   # strict key + shape check inside
    assert is_chunk_causal(dit) and dit.config.chunk_size == C.TINY_CHUNK_SIZE
    plain = load_transformer(tiny_models / C.ORIGINAL_REPO_DIR / C.DIT_FILE,
                             overrides=read_release(tiny_models / C.ORIGINAL_REPO_DIR).model_overrides)
    assert not is_chunk_causal(plain)
    a, b = dit.state_dict(), plain.state_dict()
    assert a.keys() == b.keys()                    # the same parameter names as the bidirectional DiT


def test_inconsistent_configs_are_refused(tmp_path, tiny_models):
    src = tiny_models / C.CHUNK_CAUSAL_REPO_DIR
    root = tmp_path / "bad"
    (root / "dit").mkdir(parents=True)
    (root / C.CHUNK_CAUSAL_DIT_FILE).symlink_to(src / C.CHUNK_CAUSAL_DIT_FILE)
    cfg = yaml.safe_load((src / "config.yaml").read_text())
    cfg["model"]["chunk_size"] = 0
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="model.chunk_size must be a positive integer"):
        read_release(root)
    del cfg["model"]["chunk_size"]
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="vis_sampler chunk_flow_euler but no model.chunk_size"):
        read_release(root)


def test_overrides_only_change_what_shapes_cannot_tell(tiny_models):
    path = tiny_models / C.ORIGINAL_REPO_DIR / C.DIT_FILE
    a = load_transformer(path)
    b = load_transformer(path, overrides={"chunk_size": 3})
    assert {**a.config.to_dict(), "chunk_size": 3} == b.config.to_dict()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
