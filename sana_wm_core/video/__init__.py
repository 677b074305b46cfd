"""SANA-WM video."""
