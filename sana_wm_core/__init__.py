"""The SANA-WM engine: camera paths, the Stage-1 DiT, sampling, refiner, VAE, video. Never imports ComfyUI."""
