"""SANA-WM sampling."""
