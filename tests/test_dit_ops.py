"""The DiT builds its layers from the operations namespace it is given (sana_wm_core/model/ops.py).

A namespace of the test's own classes is really used (every parametrised layer is one of them and runs) and
computes the default model's numbers; plain torch.nn classes give the same keys and numbers within fp32
rounding; a class that creates its weight only when the checkpoint arrives (as ComfyUI's Dynamic VRAM Linear
does) loads through `load_transformer` like any other.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn

from dit_oracle import inputs, make_pair, rel_diff, run_ours
from sana_wm_core.model import SanaWMTransformer, load_transformer
from sana_wm_core.model import ops as dit_ops

CALLS: dict = {}


def _counting(base: type) -> type:
    """A subclass of `base` that counts its forward calls."""
    def forward(self, *args, **kwargs):
        CALLS[id(self)] = CALLS.get(id(self), 0) + 1
        return base.forward(self, *args, **kwargs)
    return type(f"Counting{base.__name__}", (base,), {"forward": forward})


COUNTING = SimpleNamespace(**{n: _counting(getattr(dit_ops.TorchOps, n)) for n in dit_ops.LAYER_NAMES})
PLAIN = SimpleNamespace(Linear=nn.Linear, Conv1d=nn.Conv1d, Conv2d=nn.Conv2d, Conv3d=nn.Conv3d, RMSNorm=nn.RMSNorm)


def _layers(model: nn.Module) -> dict:
    """Every module that owns a weight, except the DiT's own tables (modulation, gates)."""
    return {n: m for n, m in model.named_modules()
            if "weight" in m._parameters and not isinstance(m, SanaWMTransformer)}


def test_default_operations_are_the_torch_namespace():
    """Without a namespace the DiT is made of the default classes, which are torch.nn layers."""
    model, _ = make_pair(0)
    assert model.operations is dit_ops.TorchOps
    defaults = tuple(vars(dit_ops.TorchOps).values())
    for name, m in _layers(model).items():
        assert isinstance(m, defaults), name
        assert isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RMSNorm)), name


def test_custom_namespace_is_used_and_computes_the_same_numbers():
    """Every parametrised layer comes from the given namespace and runs; the numbers are the default's, bit
    for bit (the classes only count calls); the state dict is the same keys, shapes and values."""
    ref, _ = make_pair(0)
    model = SanaWMTransformer(ref.config, operations=COUNTING).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    shapes = [(k, v.shape) for k, v in ref.state_dict().items()]
    assert [(k, v.shape) for k, v in model.state_dict().items()] == shapes
    layers = _layers(model)
    counting = tuple(vars(COUNTING).values())
    wrong = [n for n, m in layers.items() if not isinstance(m, counting)]
    assert not wrong, f"layers not built from the namespace: {wrong}"
    assert isinstance(model.blocks[0].mlp.t_conv, COUNTING.Conv2d)
    assert isinstance(model.blocks[0].attn.conv_k, COUNTING.Conv1d)
    assert isinstance(model.x_embedder.proj, COUNTING.Conv3d)
    assert isinstance(model.blocks[0].attn.q_norm, COUNTING.RMSNorm)
    kw = inputs(ref.config, B=2, F=3)
    CALLS.clear()
    out = run_ours(model, kw)
    unused = ["raymap_embedder."] + [f"blocks.{i}.attn.{g}" for i in ref.config.softmax_blocks  # in the checkpoint
                                     for g in ("beta_proj", "gate_proj")]                  # only (GDN gates)
    idle = [n for n, m in layers.items() if CALLS.get(id(m), 0) == 0 and not n.startswith(tuple(unused))]
    assert not idle, f"layers that never ran: {idle}"
    assert torch.equal(out, run_ours(ref, kw))


def test_plain_torch_layers_give_the_same_keys_and_numbers():
    """torch.nn's own classes (their own forward: F.linear, F.rms_norm) load the same checkpoint and compute
    the default model's numbers within fp32 rounding (only the RMSNorm reduction order differs)."""
    ref, _ = make_pair(0)
    sd = ref.state_dict()
    model = load_transformer(sd, ref.config, operations=PLAIN)
    assert type(model.blocks[0].attn.qkv) is nn.Linear and type(model.attention_y_norm) is nn.RMSNorm
    assert isinstance(model.blocks[0].mlp.inverted_conv.conv, nn.Conv2d)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in sd.items()}
    kw = inputs(ref.config, B=2, F=3)
    err = rel_diff(run_ours(model, kw), run_ours(ref, kw))
    print(f"plain torch.nn layers vs the default classes: max rel diff {err:.1e}")
    assert err < 1e-5


class LazyLinear(nn.Linear):
    """A Linear that holds no weight until the checkpoint arrives (what ComfyUI's Linear does under Dynamic
    VRAM, so no memory is committed for it at construction)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        nn.Module.__init__(self)
        self.in_features, self.out_features = in_features, out_features
        self.weight = None
        self.bias = None


def test_a_layer_without_weights_before_loading_still_loads():
    ref, _ = make_pair(0)
    lazy = SimpleNamespace(**{**vars(PLAIN), "Linear": LazyLinear})
    model = load_transformer(ref.state_dict(), ref.config, operations=lazy)
    assert isinstance(model.blocks[1].cross_attn.q_linear, LazyLinear)
    assert model.blocks[1].attn.qkv.bias is None                      # bias=False layers stay without one
    assert set(model.state_dict()) == set(ref.state_dict())
    kw = inputs(ref.config, B=1, F=3)
    assert rel_diff(run_ours(model, kw), run_ours(ref, kw)) < 1e-5


def test_fp8_with_other_operations_is_a_plain_cast():
    """The default classes keep fp8 with a per-row scale; other operations (ComfyUI's) get ComfyUI's fp8: a
    plain e4m3 cast of the same block matmul weights, upcast by the classes per call."""
    ref, _ = make_pair(0)
    sd = ref.state_dict()
    scaled = load_transformer(sd, ref.config, dtype="fp32", weight_format="fp8_e4m3fn")
    plain = load_transformer(sd, ref.config, dtype="fp32", weight_format="fp8_e4m3fn", operations=PLAIN)
    for name, m in plain.named_modules():
        w = m._parameters.get("weight")
        if w is None:
            continue
        want_fp8 = name.startswith("blocks.") and dit_ops.is_matmul_layer(m)
        assert (w.dtype == torch.float8_e4m3fn) == want_fp8, name
        assert (scaled.get_submodule(name).weight.dtype == torch.float8_e4m3fn) == want_fp8, name
        if want_fp8:
            assert torch.equal(w.float(), sd[name + ".weight"].to(torch.float8_e4m3fn).float()), name
            assert scaled.get_submodule(name).weight_scale is not None
