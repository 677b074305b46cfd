"""SANA-WM refiner."""
