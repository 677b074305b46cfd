"""Runtime toolkit: memory, precision, kernel choice and the host protocol the ComfyUI nodes implement."""
