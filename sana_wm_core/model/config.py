"""Stage-1 DiT configuration: one dataclass for every model size, with diffusers-config round trips."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from ..chunks import chunk_ids_from_starts, plan_chunks

# diffusers config.json keys that describe fixed architecture choices we implement (and their only values)
_FIXED_DIFFUSERS_KEYS = {
    "ffn_type": "GLUMBConvTemp",
    "pos_embed_type": "wan_rope",
    "k_conv_only": True,
    "cam_attn_compress": 1,
    "use_pe": True,
    "pred_sigma": False,
}


@dataclass
class SanaWMConfig:
    """Shape and behaviour of a SANA-WM Stage-1 transformer (defaults = the 2.6B release)."""

    in_channels: int = 128
    num_layers: int = 20
    hidden_size: int = 2240
    num_attention_heads: int = 20  # cross-attention heads; self-attention heads = hidden_size // linear_head_dim
    linear_head_dim: int = 112
    patch_size: tuple = (1, 1, 1)
    softmax_every_n: int = 4
    mlp_ratio: float = 3.0
    t_kernel_size: int = 3
    conv_kernel_size: int = 4
    qk_norm: bool = True
    cross_norm: bool = True
    y_norm: bool = True
    caption_channels: int = 2304
    use_chunk_plucker_post_attn: bool = True
    chunk_plucker_channels: int = 48
    chunk_plucker_post_attn_blocks: int = 20  # < 0 means every block
    norm_eps: float = 1e-5
    gdn_eps: float = 1e-8
    rope_theta: float = 10000.0
    rope_max_seq_len: int = 1024
    # Camera branch: diffusers 0.42.1 rescales the UCPE-transformed q/k/v back to their pre-UCPE RMS; the
    # released Triton inference does not. True = the oracle's behaviour (what the parity tests check).
    ucpe_renorm: bool = True
    # Chunk-causal variant (None = fully bidirectional release).
    chunk_size: Optional[int] = None
    chunk_split_strategy: str = "first_chunk_plus_one"
    # The release's Stage-1 sampler, stamped by the release loader (variants.py: the teacher and the streaming
    # student share this architecture). None = not known (a DiT built by hand).
    release_sampler: Optional[str] = None
    # Only used to size the unused original-layout buffers (`y_embedder.y_embedding`, `pos_embed`).
    model_max_length: int = 300
    image_size: int = 720
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)
        self.validate()

    # ------------------------------------------------------------------ derived values
    @property
    def num_heads(self) -> int:
        return self.hidden_size // self.linear_head_dim

    @property
    def ffn_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def softmax_blocks(self) -> list:
        n = self.softmax_every_n
        return [i for i in range(self.num_layers) if n > 0 and (i + 1) % n == 0]

    def block_has_plucker(self, i: int) -> bool:
        if not self.use_chunk_plucker_post_attn:
            return False
        k = self.chunk_plucker_post_attn_blocks
        return k < 0 or i < k

    def validate(self) -> None:
        """Reject shapes the network cannot be built with, naming the field and the fix."""
        d = self.linear_head_dim
        if self.hidden_size % d:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of linear_head_dim {d}")
        if d % 4 or d < 8:
            raise ValueError(f"linear_head_dim {d} must be a multiple of 4 and >= 8 (UCPE acts on groups of 4)")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of num_attention_heads "
                             f"{self.num_attention_heads}")
        if len(self.patch_size) != 3 or self.patch_size[0] != 1:
            raise ValueError(f"patch_size must be (1, ph, pw), got {self.patch_size}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of latent frames or None, got {self.chunk_size}")
        if self.chunk_split_strategy not in ("first_chunk_plus_one", "uniform"):
            raise ValueError(f"chunk_split_strategy must be 'first_chunk_plus_one' or 'uniform', got "
                             f"{self.chunk_split_strategy!r}")
        if self.t_kernel_size % 2 != 1:
            raise ValueError(f"t_kernel_size must be odd, got {self.t_kernel_size}")

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_diffusers(cls, cfg: dict) -> "SanaWMConfig":
        """Build from a diffusers `transformer/config.json` dict; unknown keys are kept in `extra`."""
        for key, only in _FIXED_DIFFUSERS_KEYS.items():
            if key in cfg and cfg[key] != only:
                raise ValueError(f"config.json sets {key}={cfg[key]!r}; only {only!r} is supported")
        names = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in cfg.items() if k in names}
        extra = {k: v for k, v in cfg.items() if k not in names and not k.startswith("_")}
        return cls(**kwargs, extra=extra)

    def to_diffusers(self) -> dict:
        """Keyword arguments for diffusers' `SanaWMTransformer3DModel` (tests build the oracle from them)."""
        keys = ("in_channels", "num_layers", "hidden_size", "num_attention_heads", "linear_head_dim",
                "softmax_every_n", "mlp_ratio", "t_kernel_size", "conv_kernel_size", "qk_norm", "cross_norm",
                "y_norm", "caption_channels", "use_chunk_plucker_post_attn", "chunk_plucker_channels",
                "chunk_plucker_post_attn_blocks", "image_size")
        out = {k: getattr(self, k) for k in keys}
        out["patch_size"] = list(self.patch_size)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chunk_starts(num_frames: int, chunk_size: Optional[int], strategy: str = "first_chunk_plus_one") -> list:
    """Frame indices where chunks begin (chunk-causal variant); a short tail merges into the previous chunk."""
    if chunk_size is None or num_frames <= 0:
        return [0]
    first = chunk_size + 1 if strategy == "first_chunk_plus_one" else chunk_size
    return [s for s, _ in plan_chunks(num_frames, chunk_size, first=first, merge_short_tail=True)]


def chunk_ids(num_frames: int, chunk_size: Optional[int], strategy: str = "first_chunk_plus_one") -> list:
    """Chunk index of every frame."""
    return chunk_ids_from_starts(num_frames, chunk_starts(num_frames, chunk_size, strategy))
