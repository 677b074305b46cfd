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

Two modes (`RefineSettings.mode`):

* `"autoregressive"` (default): the rule above, blocks of `block_size` (3), one eps per block drawn in block
  order from one generator. It is diffusers' `SanaWMLTX2Refiner` and NVlabs' `RefinerChunkRunner`
  (`--refiner_block_size 3`, the streaming release's refiner). `RefinerStream` runs it one block at a time, so
  the streaming pipeline can refine block k as soon as Stage 1 finishes chunk k.
* `"sink_bidirectional"`: NVlabs' legacy single shot (`--refiner_block_size None`): every frame after the sink
  is one block with one eps, attending to the sink (at position 0) and to all the others; no history.
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


MODES = ("autoregressive", "sink_bidirectional")


@dataclass(frozen=True)
class RefineSettings:
    """Chunking and schedule; the defaults are the contract the released refiner was trained with.
    `block_size` and `kv_max_frames` apply to the autoregressive mode only."""

    sink_size: int = 1
    block_size: int = 3
    kv_max_frames: int = 11
    sigmas: tuple[float, ...] = DISTILLED_SIGMAS
    mode: str = "autoregressive"

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"refiner mode must be one of {MODES}, got {self.mode!r}")
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


def plan_blocks(num_frames: int, settings: RefineSettings) -> list[tuple[int, int]]:
    """The blocks `settings.mode` refines: `plan_chunks` (autoregressive) or everything after the sink at once."""
    sink = int(settings.sink_size)
    if settings.mode == "sink_bidirectional":
        return [(sink, num_frames)] if num_frames > sink else []
    return plan_chunks(num_frames, sink, int(settings.block_size))


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


class RefinerStream:
    """One clip's refinement, one block at a time, holding the per-layer K/V cache between blocks.

    Made from the clean sink latents `(B,C,sink,h,w)` (their K/V are captured once, before RoPE). `refine(clean)`
    takes the Stage-1 latents of the next block, frames `[next_start, next_start + n)`, and returns them refined
    (same shape, `dtype`, on the context's device). The cache holds the sink plus at most `kv_max_frames - sink`
    history frames (all of them when that is 0), so its size stops growing once the window is full.
    """

    def __init__(self, transformer: torch.nn.Module, sink: torch.Tensor, context: torch.Tensor,
                 context_mask: torch.Tensor, *, fps: float, generator: torch.Generator, dtype: torch.dtype,
                 settings: RefineSettings = RefineSettings()):
        settings.validate()
        if not fps or float(fps) <= 0:
            raise ValueError(f"fps must be positive (it scales the refiner's temporal RoPE), got {fps}")
        n_sink = int(settings.sink_size)
        if sink.ndim != 5 or sink.shape[2] != n_sink:
            raise ValueError(f"sink must be the first {n_sink} latent frame(s), (B,C,{n_sink},h,w); got "
                             f"{tuple(sink.shape)}")
        self.settings, self.dtype, self.generator = settings, dtype, generator
        self.device = context.device
        b, _, _, h, w = sink.shape
        self.shape = (b, int(sink.shape[1]), h, w)
        self.net = _Net(transformer, b, h, w, fps, context, context_mask)
        self.tokens_per_frame = (h // self.net.p) * (w // self.net.p) // self.net.pt
        self.max_history = int(settings.kv_max_frames) - n_sink
        self.layers = len(transformer.transformer_blocks)
        sig = torch.tensor([float(s) for s in settings.sigmas[:-1]], dtype=torch.float32)
        self.sigmas = torch.cat([sig, torch.zeros(1)]).to(self.device)
        self.next_start = n_sink
        self.history_frames = 0
        self.cache = _new_cache(self.layers)
        z = sink.to(device=self.device, dtype=dtype)
        with torch.no_grad():
            self.net(pack_tokens(z.contiguous(), self.net.p, self.net.pt), 0.0, range(n_sink), self.cache,
                     "capture_pre_rope")
        for i in range(self.layers):
            entry = self.cache.get(i)
            entry.store_sink(*entry.get_captured_pre_rope())

    @property
    def sink_position(self) -> int:
        """The RoPE frame position the sink takes for the next block: right before the retained history."""
        return self.next_start - self.history_frames - int(self.settings.sink_size)

    def state_nbytes(self) -> int:
        """Bytes of sink + history K/V held for the next block."""
        total = 0
        for i in range(self.layers):
            entry = self.cache.get(i)
            for kv in (entry.get_sink(), entry.get_history()):
                total += 0 if kv is None else sum(t.numel() * t.element_size() for t in kv)
        return total

    @torch.no_grad()
    def refine(self, clean: torch.Tensor) -> torch.Tensor:
        b, c, h, w = self.shape
        if clean.ndim != 5 or (clean.shape[0], clean.shape[1], clean.shape[3], clean.shape[4]) != (b, c, h, w):
            raise ValueError(f"block must be (B={b}, C={c}, n, h={h}, w={w}) like the sink, got {tuple(clean.shape)}")
        if clean.shape[2] < 1:
            raise ValueError("a refiner block needs at least one latent frame")
        net, dtype, sig, sink = self.net, self.dtype, self.sigmas, int(self.settings.sink_size)
        start, end = self.next_start, self.next_start + int(clean.shape[2])
        offset = self.sink_position
        self.cache.sink_pe = net.rope(range(offset, offset + sink))
        clean = clean.to(device=self.device, dtype=dtype)
        gen = self.generator
        eps = torch.randn(clean.shape, generator=gen, device=gen.device, dtype=dtype).to(self.device)
        s_first = float(sig[0])
        x = ((1.0 - s_first) * clean.float() + s_first * eps.float()).to(dtype)
        positions = range(start, end)

        for k in range(len(sig) - 1):
            s = float(sig[k].item())
            tok = pack_tokens(x, net.p, net.pt)
            v = net(tok, s, positions, self.cache, "inject")
            s_tok = torch.full((b, tok.shape[1], 1), s, dtype=torch.float32, device=self.device)
            x0 = unpack_tokens((tok.float() - v.float() * s_tok).to(dtype), end - start, h, w, net.p, net.pt)
            if s <= 1.0e-6:
                x = x0.to(dtype)
                continue
            flow = (x.float() - x0.float()) / s
            x = (x.float() + (sig[k + 1] - sig[k]) * flow).to(dtype)

        net(pack_tokens(x, net.p, net.pt), 0.0, positions, self.cache, "inject_and_capture_post_rope")
        for i in range(self.layers):
            entry = self.cache.get(i)
            new_k, new_v = entry.get_captured_post_rope()
            old = entry.get_history()
            if old is None:
                entry.store_history(new_k, new_v)
            else:
                entry.store_history(torch.cat([old[0], new_k], dim=1), torch.cat([old[1], new_v], dim=1))
        self.history_frames += end - start
        if self.max_history > 0 and self.history_frames > self.max_history:  # 0: never trimmed (diffusers' rule)
            keep = self.max_history * self.tokens_per_frame
            for i in range(self.layers):
                entry = self.cache.get(i)
                old = entry.get_history()
                entry.store_history(old[0][:, -keep:], old[1][:, -keep:])
            self.history_frames = self.max_history
        self.next_start = end
        return x

    def close(self) -> None:
        self.cache.clear()


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
    Noise is drawn per block, in block order, with `torch.randn(block shape)` on the generator's
    device. `host.progress(done, total)` runs after every block, `host.check_interrupt()` before each
    (it raises to stop); `on_chunk` / `check_interrupt` are the same as plain callables.
    """
    host = _host(host, on_chunk, check_interrupt)
    settings.validate()
    if not fps or float(fps) <= 0:
        raise ValueError(f"fps must be positive (it scales the refiner's temporal RoPE), got {fps}")
    sink = int(settings.sink_size)
    check_latents(latents, int(transformer.config.in_channels), sink)

    z = latents.to(device=context.device, dtype=dtype)
    out = z.clone()
    blocks = plan_blocks(z.shape[2], settings)

    host.check_interrupt()
    stream = RefinerStream(transformer, z[:, :, :sink], context, context_mask, fps=fps, generator=generator,
                           dtype=dtype, settings=settings)
    try:
        for idx, (start, end) in enumerate(blocks):
            host.check_interrupt()
            out[:, :, start:end] = stream.refine(z[:, :, start:end])
            # `preview_of(latents)` draws the latent refined so far, only when the host asks for the picture
            host.progress(idx + 1, len(blocks), None if preview_of is None else (lambda: preview_of(out)))
    finally:
        stream.close()
    return out
