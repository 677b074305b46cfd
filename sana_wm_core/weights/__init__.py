"""SANA-WM weights."""
