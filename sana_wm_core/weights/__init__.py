"""SANA-WM weights: where checkpoints come from (local paths, ComfyUI model folders, the hub) and the
tiny random test checkpoints (`sana_wm_core.weights.tiny`, imported on demand: it needs diffusers)."""
from .known import KNOWN_WEIGHTS, KnownWeight, known_for_repo, known_weight, markdown_table
from .locate import WeightsNotFoundError, hub_offline, locate_file, locate_repo

__all__ = ["KNOWN_WEIGHTS", "KnownWeight", "known_for_repo", "known_weight", "markdown_table",
           "WeightsNotFoundError", "hub_offline", "locate_file", "locate_repo"]
