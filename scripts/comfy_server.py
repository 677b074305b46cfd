"""Boots the real headless ComfyUI (from .venv/ComfyUI) with this pack on a free loopback port.

Used by the pytest fixtures, `make demo` and `make serve` (`server_command` is the one home of the command
line). The server gets its own base directory (custom_nodes, models, input, output, user), is stopped by its
PID, and its log is kept for failure reports.
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
# "pinned" is the frontend in requirements-lock.txt (site-packages); "latest" the newest one, which
# scripts/setup_env.sh installs beside it into .venv/frontends/<version> (+ a `latest` link).
FRONTENDS = ("pinned", "latest")


def frontend_root(frontend: str) -> Path | None:
    """The folder to pass as `--front-end-root`, or None for the pinned frontend ComfyUI serves itself."""
    if frontend not in FRONTENDS:
        raise ValueError(f"frontend must be one of {', '.join(FRONTENDS)}, got {frontend!r}")
    if frontend == "pinned":
        return None
    root = VENV / "frontends" / "latest" / "comfyui_frontend_package" / "static"
    if not (root / "index.html").is_file():
        raise RuntimeError(f"{root} missing: run `make setup` (it installs the newest frontend beside the pinned one)")
    return root


def frontend_version(frontend: str) -> str:
    """The version a frontend name stands for, e.g. "1.58.1" (for test ids and logs)."""
    if frontend == "latest":
        return (VENV / "frontends" / "latest").resolve().name
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("comfyui_frontend_package")
    except PackageNotFoundError:   # not running in .venv: ask the venv's metadata folder
        dist = next((VENV / "lib").glob("python*/site-packages/comfyui_frontend_package-*.dist-info"), None)
        return dist.name.split("-")[1] if dist else "unknown"


def server_supports(flag: str) -> bool:
    """Whether this ComfyUI's command line knows `flag` (0.3.75 has no `--offline`; current releases do)."""
    cli = COMFY_MAIN.parent / "comfy" / "cli_args.py"
    try:
        return f'"{flag}"' in cli.read_text()
    except OSError:
        return False


def offline_flag() -> str:
    """Keeps the page and the server off the internet: `--offline` where ComfyUI has it (where
    `--disable-api-nodes` is its deprecated alias), else `--disable-api-nodes`, which 0.3.75 needs for that."""
    return "--offline" if server_supports("--offline") else "--disable-api-nodes"


def server_command(base: Path, port: int, *, cpu: bool, frontend: str = "pinned", previews: bool = True,
                   extra_args: tuple[str, ...] = ()) -> list[str]:
    """The ComfyUI command line for the tests, `make demo` and `make serve`: loopback only, offline, latent
    previews on (`--preview-method auto`: what the sampler and refiner draw on their nodes), one frontend."""
    root = frontend_root(frontend)
    return [
        str(VENV / "bin" / "python"), str(COMFY_MAIN), *(["--cpu"] if cpu else []), "--listen", "127.0.0.1",
        "--port", str(port), "--base-directory", str(base),
        "--database-url", f"sqlite:///{base}/user/comfyui.db",
        "--disable-auto-launch", offline_flag(),
        *(["--preview-method", "auto"] if previews else []),
        *(["--front-end-root", str(root)] if root else []), *extra_args,
    ]


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
                 cpu: bool = True, env: dict | None = None, frontend: str = "pinned"):
        self.base = prepare_base(Path(base))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "comfyui.log"
        self.extra_args = extra_args
        self.cpu = cpu
        self.env = env or {}
        self.frontend = frontend
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        if not COMFY_MAIN.exists():
            raise RuntimeError(f"{COMFY_MAIN} missing: run `make setup` first")
        cmd = server_command(self.base, self.port, cpu=self.cpu, frontend=self.frontend,
                             extra_args=self.extra_args)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **self.env}   # self.env may unset offline
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
