"""SANA-WM text."""
