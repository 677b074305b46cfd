"""SANA-WM vae."""
