"""Kept while tests move to `scripts.comfy_server` (the harness is shared with demo and build scripts)."""
from scripts.comfy_server import *  # noqa: F401,F403
from scripts.comfy_server import REPO, ComfyServer, free_port, prepare_base  # noqa: F401
