"""SANA-WM model."""
