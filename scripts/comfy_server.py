"""Boots the real headless ComfyUI (from .venv/ComfyUI) with this pack on a free loopback port.

Used by the pytest fixtures and by `make demo`. The server gets its own base directory (custom_nodes,
models, input, output, user), is stopped by its PID, and its log is kept for failure reports.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("SANA_WM_VENV", REPO / ".venv"))
COMFY_MAIN = VENV / "ComfyUI" / "main.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_base(base: Path) -> Path:
    """Creates a ComfyUI base directory with this pack linked into custom_nodes/."""
    for sub in ("custom_nodes", "models", "input", "output", "user/default", "temp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / "sana_wm"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    settings = base / "user" / "default" / "comfy.settings.json"
    if not settings.exists():
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    return base


class ComfyServer:
    """A running ComfyUI process; `url` is its loopback address."""

    def __init__(self, base: Path, port: int | None = None, extra_args: tuple[str, ...] = (),
                 cpu: bool = True, env: dict | None = None):
        self.base = prepare_base(Path(base))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "comfyui.log"
        self.extra_args = extra_args
        self.cpu = cpu
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        if not COMFY_MAIN.exists():
            raise RuntimeError(f"{COMFY_MAIN} missing: run `make setup` first")
        cmd = [
            str(VENV / "bin" / "python"), str(COMFY_MAIN), *(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1",
            "--port", str(self.port), "--base-directory", str(self.base),
            "--database-url", f"sqlite:///{self.base}/user/comfyui.db",
            "--disable-auto-launch", "--disable-api-nodes", *self.extra_args,
        ]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **self.env)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(self.base))
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(self.url + "/system_stats", timeout=2).read()
                self.boot_seconds = time.time() - t0
                return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()
        self.proc = None

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def copy_into_input(server_base: Path, src: Path, name: str | None = None) -> str:
    dst = Path(server_base) / "input" / (name or Path(src).name)
    shutil.copyfile(src, dst)
    return dst.name


if __name__ == "__main__":  # manual use: python scripts/comfy_server.py BASE PORT
    srv = ComfyServer(Path(sys.argv[1]), int(sys.argv[2])).start()
    print(srv.url, flush=True)
    srv.proc.wait()
