"""The loaded-on-demand Stage-2 refiner (the value behind ComfyUI's SANAWM_REFINER type).

Nothing heavy happens at construction: the Gemma-3 encoder and connectors are loaded for a prompt
encode and freed right after (encodings are cached per prompt), the refiner DiT is loaded for a run
and freed afterwards unless `keep_loaded`. Memory knobs: dtype, fp8 weight storage and block offload.
"""
from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from ..latent import SanaWMLatent, require_latent
from ..runtime.host import Host
from ..sampling.preview import latent_preview
from .loading import RefinerPaths, load_connectors, load_refiner_transformer, load_text_encoder, load_tokenizer
from .loop import RefinerStream, RefineSettings, check_latents, refine_latents
from ..runtime.offload import BlockOffloader, move_materialised
from .text import encode_refiner_prompt

_TOP_VIDEO_MODULES = ("proj_in", "time_embed", "caption_projection", "norm_out", "proj_out")


@dataclass(frozen=True)
class RefinerOptions:
    """How the refiner is held in memory.

    `offload_blocks`: None keeps every DiT block on the device; N >= 0 keeps only the first N there and
    streams the rest from CPU per call (the Gemma-3 layers are then streamed too).
    """

    dtype: torch.dtype = torch.bfloat16
    fp8: bool = False
    offload_blocks: int | None = None
    keep_loaded: bool = False
    attn_implementation: str = "sdpa"


def _empty_cache(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _decoder_layers(text_encoder) -> torch.nn.ModuleList | None:
    inner = getattr(text_encoder, "model", text_encoder)
    lm = getattr(inner, "language_model", inner)
    return getattr(lm, "layers", None)


class SanaWMRefiner:
    """Stage-2 refiner bound to one checkpoint folder, one device and one set of memory options."""

    def __init__(self, paths: RefinerPaths, device: torch.device | str = "cpu",
                 options: RefinerOptions = RefinerOptions()):
        self.paths = paths
        self.device = torch.device(device)
        self.options = options
        self._tokenizer = None
        self._transformer = None
        self._offloader: BlockOffloader | None = None
        self._prompt_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def offloader(self) -> BlockOffloader | None:
        """The block offloader of the loaded network (None: not loaded, or every block on the device)."""
        return self._offloader

    def __repr__(self) -> str:
        o = self.options
        return (f"SanaWMRefiner({self.paths.root}, device={self.device}, dtype={o.dtype}, fp8={o.fp8}, "
                f"offload_blocks={o.offload_blocks})")

    # ---------------------------------------------------------------- text

    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.paths.tokenizer)
        return self._tokenizer

    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Context `(1,S,D)` + mask for `prompt`, on CPU; Gemma-3 is loaded for this and freed after."""
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        key = prompt.strip()
        if key in self._prompt_cache:
            return self._prompt_cache[key]
        tok = self.tokenizer()
        te = load_text_encoder(self.paths.text_encoder, self.options.dtype, self.options.attn_implementation)
        conn = load_connectors(self.paths.connectors, self.options.dtype)
        streamer = None
        layers = _decoder_layers(te)
        try:
            if self.options.offload_blocks is not None and layers is not None and self.device.type == "cuda":
                streamer = BlockOffloader(layers, self.device, resident=0, hooks=True)
                move_materialised(te, self.device, exclude=layers)
            else:
                te.to(self.device)
            conn.to(self.device)
            ctx, mask = encode_refiner_prompt(
                prompt, tokenizer=tok, text_encoder=te, connectors=conn, max_length=self.paths.text_max_length,
                device=self.device, dtype=self.options.dtype,
            )
            result = (ctx.to("cpu"), mask.to("cpu"))
        finally:
            if streamer is not None:
                streamer.remove()
            del te, conn, streamer
            _empty_cache(self.device)
        self._prompt_cache[key] = result
        return result

    # ---------------------------------------------------------------- network

    def network(self) -> torch.nn.Module:
        """The refiner DiT placed on the device (video branch only), loading it on first use."""
        if self._transformer is not None:
            return self._transformer
        o = self.options
        model = load_refiner_transformer(self.paths.transformer, o.dtype, fp8=o.fp8)
        for name in _TOP_VIDEO_MODULES:
            move_materialised(getattr(model, name), self.device)
        model.scale_shift_table.data = model.scale_shift_table.data.to(self.device)
        if o.offload_blocks is None:
            for block in model.transformer_blocks:
                move_materialised(block, self.device)
        else:
            self._offloader = BlockOffloader(model.transformer_blocks, self.device, resident=o.offload_blocks,
                                             hooks=True)
        self._transformer = model
        return model

    def in_channels(self) -> int:
        import json

        cfg = json.loads((self.paths.transformer / "config.json").read_text())
        return int(cfg.get("in_channels", 128))

    def refine(
        self,
        latents: torch.Tensor,
        prompt: str,
        *,
        seed: int,
        fps: float,
        settings: RefineSettings = RefineSettings(),
        host: Host | None = None,
        on_chunk: Callable[[int, int], None] | None = None,
        check_interrupt: Callable[[], None] | None = None,
        preview_of: Callable[[torch.Tensor], Any] | None = None,
    ) -> torch.Tensor:
        """Refined latents on CPU (same shape; frame 0 bit-identical). Noise comes from a CPU generator.
        Progress per chunk and cancel go through `host` (or the plain callables, see `refine_latents`)."""
        settings.validate()
        check_latents(latents, self.in_channels(), int(settings.sink_size))
        if not fps or float(fps) <= 0:
            raise ValueError(f"fps must be positive (it scales the refiner's temporal RoPE), got {fps}")
        ctx, mask = self.encode_prompt(prompt)
        if host is not None:
            host.check_interrupt()
        if check_interrupt is not None:
            check_interrupt()
        net = self.network()
        gen = torch.Generator("cpu").manual_seed(int(seed))
        try:
            out = refine_latents(
                net, latents, ctx.to(self.device), mask.to(self.device), fps=float(fps), generator=gen,
                dtype=self.options.dtype, settings=settings, host=host, on_chunk=on_chunk,
                check_interrupt=check_interrupt, preview_of=preview_of,
            )
            return out.to("cpu")
        finally:
            if not self.options.keep_loaded:
                self.free()

    @contextlib.contextmanager
    def stream(self, sink: torch.Tensor, prompt: str, *, seed: int, fps: float,
               settings: RefineSettings = RefineSettings()) -> Iterator[RefinerStream]:
        """A `RefinerStream` on the loaded network for one clip (streaming: block k refined once Stage 1 has it).

        `sink` is the clean first latent frame(s) `(1,C,sink,h,w)`; blocks go to `.refine(block)` in order and come
        back on the refiner's device. Noise comes from a CPU generator seeded `seed`, drawn per block in order,
        so the blocks equal `refine` of the whole latent. The network is freed on exit unless `keep_loaded`.
        """
        settings.validate()
        if sink.ndim != 5 or sink.shape[1] != self.in_channels():
            raise ValueError(f"sink must be (1, {self.in_channels()}, {settings.sink_size}, h, w) refiner latents, "
                             f"got {tuple(sink.shape)}")
        ctx, mask = self.encode_prompt(prompt)
        net = self.network()
        gen = torch.Generator("cpu").manual_seed(int(seed))
        stream = None
        try:
            stream = RefinerStream(net, sink, ctx.to(self.device), mask.to(self.device), fps=float(fps),
                                   generator=gen, dtype=self.options.dtype, settings=settings)
            yield stream
        finally:
            if stream is not None:
                stream.close()
            if not self.options.keep_loaded:
                self.free()

    @staticmethod
    def prompt_for(latent: SanaWMLatent, prompt: str = "") -> str:
        """The refiner prompt for `latent` (`prompt` stripped, else the Stage-1 prompt it carries), after the
        cheap checks that must fail before anything loads: a `SanaWMLatent`, not yet refined, some prompt."""
        require_latent(latent).require_unrefined()
        text = (prompt or "").strip() or (latent.prompt or "").strip()
        if not text:
            raise ValueError("prompt is empty and the latent carries no Stage-1 prompt (core nodes such as Load "
                             "Latent drop it): type the refiner prompt into 'prompt'")
        return text

    def refine_latent(
        self,
        latent: SanaWMLatent,
        prompt: str = "",
        *,
        seed: int,
        settings: RefineSettings = RefineSettings(),
        host: Host | None = None,
        on_chunk: Callable[[int, int], None] | None = None,
        check_interrupt: Callable[[], None] | None = None,
    ) -> SanaWMLatent:
        """The refined `SanaWMLatent`: its fps scales the temporal RoPE, an empty `prompt` means the Stage-1
        prompt it carries (`prompt_for`), and the decoder then drops the sink's pixel frame."""
        text = self.prompt_for(latent, prompt)
        proj = latent.preview_proj
        preview_of = None if proj is None else (lambda z: latent_preview(z, proj))   # Stage 1's colours
        out = self.refine(latent.samples, text, seed=seed, fps=latent.fps, settings=settings, host=host,
                          on_chunk=on_chunk, check_interrupt=check_interrupt, preview_of=preview_of)
        return latent.with_refined(out.to(latent.samples.dtype), settings.sink_size, refine_seed=int(seed))

    def free(self) -> None:
        """Drops the loaded network (prompt encodings stay cached: they are small)."""
        if self._offloader is not None:
            self._offloader.remove()
        self._offloader = None
        self._transformer = None
        _empty_cache(self.device)

