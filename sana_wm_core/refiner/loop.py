"""The Stage-2 chunk loop: sink-anchored, sliding-window refinement of Stage-1 latents.

The refiner network (an LTX-2 DiT with a per-layer K/V cache) only ever sees one chunk of
`block_size` latent frames. Each chunk attends to `[sink, recent history, itself]`:

* the sink (the clean Stage-1 frame 0) is captured once, before RoPE, and re-positioned for every
  window so it sits right before the history;
* every chunk starts from `(1 - s0) * stage1 + s0 * eps` and takes the distilled Euler steps;
* the refined chunk's post-RoPE K/V joins the history, which is trimmed to `kv_max_frames - sink`
  frames, so each chunk costs the same and the whole video costs linear time. `kv_max_frames == sink`
  means no trimming at all (diffusers' rule; NVlabs' autoregressive refiner reads it as "no history").

The sink frame is copied through untouched; decoders drop its pixel frame (`SanaWMLatent.drop_first_frames`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..chunks import plan_chunks as shared_plan_chunks
from ..deps import require
from ..runtime.host import NULL_HOST, CallbackHost, Host

# The distilled LTX-2 stage-2 tail: three Euler steps.
DISTILLED_SIGMAS: tuple[float, ...] = (0.909375, 0.725, 0.421875, 0.0)


@dataclass(frozen=True)
class RefineSettings:
    """Chunking and schedule; the defaults are the contract the released refiner was trained with."""

    sink_size: int = 1
    block_size: int = 3
    kv_max_frames: int = 11
    sigmas: tuple[float, ...] = DISTILLED_SIGMAS

    def validate(self) -> None:
        if int(self.sink_size) < 1:
            raise ValueError(f"sink_size must be >= 1 (the clean first latent frame), got {self.sink_size}")
        if int(self.block_size) < 1:
            raise ValueError(f"block_size must be >= 1 latent frame, got {self.block_size}")
        if int(self.kv_max_frames) < int(self.sink_size):
            raise ValueError(
                f"kv_max_frames ({self.kv_max_frames}) must be at least sink_size ({self.sink_size}): it is the "
                "window of sink + history frames each chunk attends to (release: 11; equal to sink_size = the "
                "history is never trimmed, as in diffusers)"
            )
        s = [float(x) for x in self.sigmas]
        if len(s) < 2 or s[-1] != 0.0 or any(a <= b for a, b in zip(s, s[1:])) or s[0] > 1.0:
            raise ValueError(f"sigmas must be strictly descending in (0, 1] and end at 0.0, got {tuple(s)}")


def plan_chunks(num_frames: int, sink_size: int, block_size: int) -> list[tuple[int, int]]:
    """`[start, end)` latent-frame ranges refined one after another (the sink is never refined; a short
    last chunk stays short)."""
    return shared_plan_chunks(num_frames, block_size, start=sink_size)


def pack_tokens(x: torch.Tensor, p: int = 1, pt: int = 1) -> torch.Tensor:
    """`(B,C,T,H,W)` -> `(B, T*H*W / (pt*p*p), C*pt*p*p)`, tokens ordered frame, row, column."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // pt, pt, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)
    return x.reshape(b, (t // pt) * (h // p) * (w // p), c * pt * p * p)


def unpack_tokens(tokens: torch.Tensor, t: int, h: int, w: int, p: int = 1, pt: int = 1) -> torch.Tensor:
    """Inverse of `pack_tokens` for a `(t, h, w)` latent block."""
    b = tokens.shape[0]
    x = tokens.reshape(b, t // pt, h // p, w // p, -1, pt, p, p)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)
    return x.reshape(b, x.shape[1], t, h, w)


def check_latents(latents: torch.Tensor, channels: int, sink_size: int) -> None:
    """Fails fast, naming the problem, before any model work starts."""
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5:
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ValueError(f"latent must be a (1, C, T, h, w) Stage-1 latent video, got {shape}")
    if latents.shape[1] != channels:
        raise ValueError(
            f"latent has {latents.shape[1]} channels but the refiner expects {channels} (LTX-2 VAE latents); "
            "connect the Stage-1 sampler output, not an image latent from another VAE"
        )
    if latents.shape[2] <= sink_size:
        raise ValueError(
            f"latent has {latents.shape[2]} latent frames; the refiner needs more than sink_size={sink_size} "
            "(at least 9 video frames)"
        )
    if not torch.isfinite(latents).all():
        raise ValueError("latent contains NaN or Inf values; the Stage-1 sampling diverged")


class _Net:
    """Thin call adapter around the LTX-2 refiner network and its K/V cache modes."""

    def __init__(self, transformer, batch: int, height: int, width: int, fps: float, context, context_mask):
        cfg = transformer.config
        self.model = transformer
        self.p, self.pt = int(cfg.patch_size), int(cfg.patch_size_t)
        self.t_scale = float(cfg.timestep_scale_multiplier)
        self.batch, self.h, self.w, self.fps = batch, height, width, float(fps)
        self.context, self.context_mask = context, context_mask
        self.device = context.device

    def rope(self, positions: Sequence[int]):
        return self.model.build_rotary_emb_for_absolute_positions(
            batch_size=self.batch, frame_positions=list(positions), height=self.h, width=self.w,
            device=self.device, fps=self.fps,
        )

    def __call__(self, tokens, timestep_value: float, positions, cache, mode: str):
        t = torch.full((self.batch, tokens.shape[1]), timestep_value * self.t_scale, dtype=torch.float32,
                       device=self.device)
        return self.model(
            hidden_states=tokens, encoder_hidden_states=self.context, timestep=t,
            video_rotary_emb=self.rope(positions), encoder_attention_mask=self.context_mask,
            kv_cache=cache, kv_cache_mode=mode, return_dict=False,
        )[0]


def _host(host: Host | None, on_chunk, check_interrupt) -> Host:
    """The host, or one made of the plain callables (progress `on_chunk(done, total)`, a raising check)."""
    if on_chunk is None and check_interrupt is None:
        return NULL_HOST if host is None else host
    if host is not None:
        raise ValueError("pass either host or on_chunk/check_interrupt, not both")

    def check() -> None:
        if check_interrupt is not None:
            check_interrupt()

    return CallbackHost(on_progress=None if on_chunk is None else (lambda d, t, p=None: on_chunk(d, t)),
                        interrupt=check)


def _new_cache(num_layers: int):
    SanaWMRefinerKVCache = require("diffusers.models.transformers.transformer_sana_wm_refiner",
                                   "The Stage-2 refiner", "diffusers>=0.42.1").SanaWMRefinerKVCache

    return SanaWMRefinerKVCache(num_layers)


@torch.no_grad()
def refine_latents(
    transformer: torch.nn.Module,
    latents: torch.Tensor,
    context: torch.Tensor,
    context_mask: torch.Tensor,
    *,
    fps: float,
    generator: torch.Generator,
    dtype: torch.dtype,
    settings: RefineSettings = RefineSettings(),
    host: Host | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
    preview_of: Callable[[torch.Tensor], Any] | None = None,
) -> torch.Tensor:
    """Refines `(B,C,T,h,w)` Stage-1 latents; returns the same shape with frames `[:sink]` unchanged.

    `context`/`context_mask` come from `encode_refiner_prompt` and sit on the compute device.
    Noise is drawn per chunk, in chunk order, with `torch.randn(chunk shape)` on the generator's
    device. `host.progress(done, total)` runs after every chunk, `host.check_interrupt()` before each
    (it raises to stop); `on_chunk` / `check_interrupt` are the same as plain callables.
    """
    host = _host(host, on_chunk, check_interrupt)
    settings.validate()
    if not fps or float(fps) <= 0:
        raise ValueError(f"fps must be positive (it scales the refiner's temporal RoPE), got {fps}")
    sink = int(settings.sink_size)
    check_latents(latents, int(transformer.config.in_channels), sink)
    device = context.device

    sig = torch.tensor([float(s) for s in settings.sigmas[:-1]], dtype=torch.float32)
    sig = torch.cat([sig, torch.zeros(1)]).to(device)
    s_first = float(sig[0])

    z = latents.to(device=device, dtype=dtype)
    out = z.clone()
    b, _, n_frames, h, w = z.shape
    net = _Net(transformer, b, h, w, fps, context, context_mask)
    tokens_per_frame = (h // net.p) * (w // net.p) // net.pt
    max_history = int(settings.kv_max_frames) - sink
    layers = len(transformer.transformer_blocks)
    chunks = plan_chunks(n_frames, sink, int(settings.block_size))

    host.check_interrupt()
    cache = _new_cache(layers)
    net(pack_tokens(z[:, :, :sink].contiguous(), net.p, net.pt), 0.0, range(sink), cache, "capture_pre_rope")
    for i in range(layers):
        entry = cache.get(i)
        entry.store_sink(*entry.get_captured_pre_rope())

    history = 0
    for idx, (start, end) in enumerate(chunks):
        host.check_interrupt()
        offset = start - history - sink
        cache.sink_pe = net.rope(range(offset, offset + sink))
        clean = z[:, :, start:end]
        eps = torch.randn(clean.shape, generator=generator, device=generator.device, dtype=dtype).to(device)
        x = ((1.0 - s_first) * clean.float() + s_first * eps.float()).to(dtype)
        positions = range(start, end)

        for k in range(len(sig) - 1):
            s = float(sig[k].item())
            tok = pack_tokens(x, net.p, net.pt)
            v = net(tok, s, positions, cache, "inject")
            s_tok = torch.full((b, tok.shape[1], 1), s, dtype=torch.float32, device=device)
            x0 = unpack_tokens((tok.float() - v.float() * s_tok).to(dtype), end - start, h, w, net.p, net.pt)
            if s <= 1.0e-6:
                x = x0.to(dtype)
                continue
            flow = (x.float() - x0.float()) / s
            x = (x.float() + (sig[k + 1] - sig[k]) * flow).to(dtype)

        net(pack_tokens(x, net.p, net.pt), 0.0, positions, cache, "inject_and_capture_post_rope")
        for i in range(layers):
            entry = cache.get(i)
            new_k, new_v = entry.get_captured_post_rope()
            old = entry.get_history()
            if old is None:
                entry.store_history(new_k, new_v)
            else:
                entry.store_history(torch.cat([old[0], new_k], dim=1), torch.cat([old[1], new_v], dim=1))
        history += end - start
        if max_history > 0 and history > max_history:  # 0: never trimmed (diffusers' rule)
            keep = max_history * tokens_per_frame
            for i in range(layers):
                entry = cache.get(i)
                old = entry.get_history()
                entry.store_history(old[0][:, -keep:], old[1][:, -keep:])
            history = max_history

        out[:, :, start:end] = x
        # `preview_of(latents)` draws the latent refined so far, only when the host asks for the picture
        host.progress(idx + 1, len(chunks), None if preview_of is None else (lambda: preview_of(out)))
    cache.clear()
    return out
