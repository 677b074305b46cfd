"""SANA-WM weights: where checkpoints come from (local paths, ComfyUI model folders, the hub).

The tiny random test checkpoints live in `sana_wm_core.testing` (they build networks; this package only finds files).
"""
from .known import KNOWN_WEIGHTS, KnownWeight, known_for_repo, known_weight, markdown_table
from .locate import WeightsNotFoundError, check_model_reference, hub_offline, locate_file, locate_repo

__all__ = ["KNOWN_WEIGHTS", "KnownWeight", "known_for_repo", "known_weight", "markdown_table",
           "WeightsNotFoundError", "check_model_reference", "hub_offline", "locate_file", "locate_repo"]
