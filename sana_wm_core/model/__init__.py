"""Stage-1 DiT: config, network, kernels, key conversion, loading, offload, and the release it comes from."""
from .config import SanaWMConfig, chunk_ids, chunk_starts
from .convert import diffusers_to_original, infer_config, original_to_diffusers
from .loading import load_transformer
from .offload import enable_block_offload
from .release import DEFAULT_FLOW_SHIFT, ReleaseInfo, Stage1Model, flow_shift_from_config, read_release
from .transformer import SanaWMTransformer

__all__ = ["SanaWMConfig", "SanaWMTransformer", "load_transformer", "original_to_diffusers", "diffusers_to_original",
           "infer_config", "enable_block_offload", "chunk_ids", "chunk_starts", "DEFAULT_FLOW_SHIFT", "ReleaseInfo",
           "Stage1Model", "flow_shift_from_config", "read_release"]
