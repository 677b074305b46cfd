"""SANA-WM intrinsics."""
