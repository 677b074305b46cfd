"""Which sampler runs which SANA-WM release: the one rule every consumer checks.

The three releases share one architecture (the chunk-causal teacher and the distilled streaming student even
share their weights' layout and chunk size), so the DiT cannot tell them apart by its shapes: the release
loader stamps the release's own sampler on the DiT's config (`SanaWMConfig.release_sampler`, from
`ReleaseInfo.model_overrides`). Each release runs only with its own samplers; a DiT built by hand has no stamp,
and then only the architecture decides (no chunk_size: bidirectional; a chunk_size: either chunk-causal sampler).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from .release import CHUNK_SAMPLER, DEFAULT_SAMPLER, STREAM_SAMPLER

__all__ = ["Variant", "VARIANTS", "variant_of", "variant_for_sampler", "sampler_fits", "check_sampler_for_model"]


@dataclass(frozen=True)
class Variant:
    """A release: how messages name it, its hub repo, and the samplers it runs with (the first = the release's)."""

    name: str
    repo: str
    samplers: tuple[str, ...]

    @property
    def sampler(self) -> str:
        return self.samplers[0]


BIDIRECTIONAL = Variant("the bidirectional model", "Efficient-Large-Model/SANA-WM_bidirectional",
                        (DEFAULT_SAMPLER, "flow_euler"))
CHUNK_CAUSAL = Variant("the chunk-causal teacher", "Efficient-Large-Model/SANA-WM_chunk_causal", (CHUNK_SAMPLER,))
STREAMING = Variant("the distilled streaming student", "Efficient-Large-Model/SANA-WM_streaming", (STREAM_SAMPLER,))
VARIANTS: dict[str, Variant] = {v.sampler: v for v in (BIDIRECTIONAL, CHUNK_CAUSAL, STREAMING)}   # by release sampler


def variant_for_sampler(sampler: str) -> Variant:
    """The release a sampler belongs to (every name that is not a chunk-causal sampler: the bidirectional one)."""
    return next((v for v in VARIANTS.values() if sampler in v.samplers), BIDIRECTIONAL)


def variant_of(model: Any) -> Optional[Variant]:
    """The release of a Stage-1 DiT (or of anything holding it as `.transformer`): its stamped release sampler's;
    unstamped, the bidirectional one without a chunk_size and None (either chunk-causal release) with one."""
    cfg = getattr(getattr(model, "transformer", model), "config", None)
    stamped = getattr(cfg, "release_sampler", None)
    if stamped is not None:
        return variant_for_sampler(stamped)
    return BIDIRECTIONAL if getattr(cfg, "chunk_size", None) is None else None


def sampler_fits(model: Any, sampler: str) -> bool:
    """True when `sampler` is one the model's release runs with."""
    have = variant_of(model)
    want = variant_for_sampler(sampler)
    return want is have or (have is None and want is not BIDIRECTIONAL)


def check_sampler_for_model(model: Any, sampler: str, *, asked_by: Optional[str] = None,
                            instead: Optional[Callable[[Variant], str]] = None) -> None:
    """ValueError naming the fix unless `sampler` runs on this model's release (`sampler_fits`).

    asked_by: who needs `sampler` (default "sampler <name>", e.g. a node's name). instead(variant): how to run
    the loaded release instead (default "set sampler to <its sampler>")."""
    if sampler_fits(model, sampler):
        return
    want, have = variant_for_sampler(sampler), variant_of(model)
    if have is None:                 # unstamped chunk-causal DiT asked for a bidirectional sampler
        raise ValueError(f"{asked_by or f'sampler {sampler}'} needs {want.name} ({want.repo}), but this Stage-1 DiT "
                         f"is chunk-causal (SANA-WM_chunk_causal or SANA-WM_streaming): set sampler to "
                         f"{CHUNK_SAMPLER} (the teacher) or {STREAM_SAMPLER} (the streaming student), or load "
                         f"{want.repo} in the model loader")
    other = instead(have) if instead is not None else f"set sampler to {have.sampler}"
    raise ValueError(f"{asked_by or f'sampler {sampler}'} needs {want.name} ({want.repo}), but this Stage-1 DiT is "
                     f"{have.name} ({have.repo}): load {want.repo} in the model loader, or {other}")
