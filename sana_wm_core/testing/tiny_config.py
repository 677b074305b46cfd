"""Sizes of the tiny random SANA-WM checkpoints used by tests, the tiny demo and the shipped tiny workflows.

Every width that links two components is derived here from the one it must equal, so the parts always
fit together: DiT `caption_channels` = Gemma-2 hidden size, DiT `in_channels` = VAE latent channels,
`chunk_plucker_channels` = 6 x VAE temporal stride, connector width = Gemma-3 hidden size, and so on.
The values and the seed layout are those of `docs/diffusers_sanawm_tiny.py`, so a checkpoint written by
`sana_wm_core.testing.tiny` holds exactly the weights that script builds in memory.
"""
from __future__ import annotations

# Frame size and length that the tiny checkpoints are meant to run at. The LTX-2 VAE has the real
# 32x spatial / 8x temporal strides, so 96x128 px -> 3x4 latents and 17 frames -> 3 latent frames.
TINY_HEIGHT = 96
TINY_WIDTH = 128
TINY_NUM_FRAMES = 17
TINY_VAE_SPATIAL_STRIDE = 32
TINY_VAE_TEMPORAL_STRIDE = 8

# Stage-1 scheduler shift written to config.yaml (`flow_shift`, `inference_flow_shift`) and to the
# diffusers layout's scheduler config. A test value: the release uses 9.95 / 9.8.
TINY_FLOW_SHIFT = 3.0
# The refiner pipeline's text length (release: 1024); must be a multiple of the connector registers.
TINY_REFINER_TEXT_MAX_LEN = 128
# Seed of the random weights; component k is built right after `torch.manual_seed(TINY_WEIGHTS_SEED + k)`.
TINY_WEIGHTS_SEED = 0

LATENT_CHANNELS = 16  # release: 128

GEMMA2_CONFIG = dict(  # release: gemma-2-2b-it (hidden 2304, 26 layers, 8 heads / 4 KV, head_dim 256)
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    head_dim=32, query_pre_attn_scalar=32, max_position_embeddings=4096,
    pad_token_id=0, eos_token_id=1, bos_token_id=2,
)

# LTX-2-shaped video VAE with tiny channels. Both compression ratios are given explicitly because the
# constructor's fallback formula would give 64/16 for this block layout.
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
    block_out_channels=(8, 16, 32, 64), decoder_block_out_channels=(8, 16, 32),
    layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
    spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True),
    decoder_inject_noise=(False, False, False, False),
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_type=("spatiotemporal", "spatiotemporal", "spatiotemporal"),
    upsample_residual=(True, True, True), upsample_factor=(2, 2, 2),
    timestep_conditioning=False,  # both SANA-WM stages call vae.decode() without temb
    patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
    encoder_spatial_padding_mode="zeros", decoder_spatial_padding_mode="reflect",
    spatial_compression_ratio=TINY_VAE_SPATIAL_STRIDE, temporal_compression_ratio=TINY_VAE_TEMPORAL_STRIDE,
)

# Stage-1 DiT: 4 blocks, softmax every 4th (blocks 0-2 GDN, block 3 softmax), 4 self-attention heads of 32.
DIT_CONFIG = dict(
    in_channels=LATENT_CHANNELS, num_layers=4, hidden_size=128, num_attention_heads=4, linear_head_dim=32,
    softmax_every_n=4, mlp_ratio=3.0, caption_channels=GEMMA2_CONFIG["hidden_size"],
    chunk_plucker_channels=6 * TINY_VAE_TEMPORAL_STRIDE, chunk_plucker_post_attn_blocks=4,
)
DIT_ZERO_INIT_STD = 0.1  # zero-initialised DiT params are refilled with N(0, 0.1) so every branch matters

GEMMA3_TEXT_CONFIG = dict(  # release: Gemma-3-12B (hidden 3840, 48 layers)
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    head_dim=32, query_pre_attn_scalar=32, max_position_embeddings=4096,
    pad_token_id=0, eos_token_id=1, bos_token_id=2,
)
SIGLIP_CONFIG = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                     image_size=8, patch_size=2)
GEMMA3_MM_TOKENS_PER_IMAGE = 4

CONNECTORS_CONFIG = dict(
    caption_channels=GEMMA3_TEXT_CONFIG["hidden_size"],
    text_proj_in_factor=GEMMA3_TEXT_CONFIG["num_hidden_layers"] + 1,
    video_connector_num_attention_heads=2, video_connector_attention_head_dim=32, video_connector_num_layers=1,
    video_connector_num_learnable_registers=16,
    audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=32, audio_connector_num_layers=1,
    audio_connector_num_learnable_registers=16,
    connector_rope_base_seq_len=TINY_REFINER_TEXT_MAX_LEN,
)

REFINER_DIT_CONFIG = dict(  # video stream only is ever run; the audio modules exist for key compatibility
    in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, num_attention_heads=2, attention_head_dim=32,
    cross_attention_dim=64, num_layers=2, caption_channels=GEMMA3_TEXT_CONFIG["hidden_size"],
    vae_scale_factors=(TINY_VAE_TEMPORAL_STRIDE, TINY_VAE_SPATIAL_STRIDE, TINY_VAE_SPATIAL_STRIDE),
    audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2, audio_attention_head_dim=8,
    audio_cross_attention_dim=16,
)

# Seed offsets per component (added to TINY_WEIGHTS_SEED).
SEED_GEMMA2, SEED_VAE, SEED_VAE_STATS, SEED_DIT, SEED_DIT_ZERO_FILL = 0, 1, 2, 3, 4
SEED_GEMMA3, SEED_CONNECTORS, SEED_REFINER = 10, 11, 12

# Folder names inside a ComfyUI `models/` directory.
ORIGINAL_REPO_DIR = "sana_wm/SANA-WM_bidirectional"
DIFFUSERS_REPO_DIR = "sana_wm/SANA-WM_bidirectional-diffusers"
GEMMA2_DIR = "text_encoders/gemma-2-2b-it"
DIT_FILE = "dit/sana_wm_1600m_720p.safetensors"
# The chunk-causal release (Efficient-Large-Model/SANA-WM_chunk_causal): its DiT and config.yaml only.
CHUNK_CAUSAL_REPO_DIR = "sana_wm/SANA-WM_chunk_causal"
CHUNK_CAUSAL_DIT_FILE = "dit/sana_wm_chunk_causal_1600m_720p.safetensors"
# Latent frames per chunk (release: 3). 1 splits the tiny clip's 3 latent frames into two chunks, [0,2) and
# [2,3), so the tiny workflow runs the staggered schedule for real.
TINY_CHUNK_SIZE = 1
# The distilled streaming bundle (Efficient-Large-Model/SANA-WM_streaming): the DiT as a PyTorch training
# checkpoint (generator + critic + a step counter), the causal VAE, the refiner and Gemma-3, no config (its
# chunk size is the release's 3 latent frames).
STREAMING_REPO_DIR = "sana_wm/SANA-WM_streaming"
STREAMING_DIT_FILE = "sana_dit/model.pt"
SEED_STREAMING_REFINER = 20   # its refiner gets other weights than the bidirectional one (not assumed equal)
