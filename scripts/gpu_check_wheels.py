"""The few pure-Python wheels `make gpu-check` needs on a GPU machine that has CUDA torch but no network.

GPU machines carry CUDA PyTorch, Triton, transformers and safetensors, but not diffusers (the numerical
reference) or the small packages diffusers imports. `make gpu-wheels` downloads exactly the versions
pinned in requirements-lock.txt (no dependency resolution) into a git-ignored folder that is small
enough to copy along; on the GPU machine `ensure_installed` installs only what is missing from that
folder into a temporary target directory and puts it on sys.path (and returns it for subprocesses'
PYTHONPATH). Nothing is installed into the machine's Python itself.
"""
from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"
DEFAULT_DIR = ROOT / "gpu_wheels"
GPU_PYTHON = "3.12"  # the GPU machines' Python; pillow is the only wheel that is not pure Python
GPU_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")

# import name -> distribution name in requirements-lock.txt
GPU_WHEELS = {
    "diffusers": "diffusers",
    "importlib_metadata": "importlib_metadata",
    "zipp": "zipp",
    "requests": "requests",
    "urllib3": "urllib3",
    "idna": "idna",
    "certifi": "certifi",
    "charset_normalizer": "charset-normalizer",
    "PIL": "pillow",
    "einops": "einops",
}


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def locked_versions(lock: Path = LOCK) -> dict:
    """{normalised distribution name: version} from the lock file (the one home of every pin)."""
    out = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            out[_norm(name.split("[")[0])] = ver.split(";")[0].strip()
    return out


def pins(dists, lock: Path = LOCK) -> list:
    """`name==version` for each distribution, from the lock; ValueError names any that is not pinned."""
    versions = locked_versions(lock)
    missing = [d for d in dists if _norm(d) not in versions]
    if missing:
        raise ValueError(f"{missing} not pinned in {lock.name}; add them there first")
    return [f"{d}=={versions[_norm(d)]}" for d in dists]


def download(dest: Path = DEFAULT_DIR) -> list:
    """`pip download --no-deps` of the pinned wheels for the GPU machines' Python; returns the files."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", GPU_PYTHON, "--implementation", "cp"]
    for plat in GPU_PLATFORMS:
        cmd += ["--platform", plat]
    subprocess.run(cmd + pins(GPU_WHEELS.values()), check=True)
    return sorted(dest.glob("*.whl"))


def missing_modules(required: dict) -> dict:
    """The subset of {import name: distribution} this Python cannot import."""
    importlib.invalidate_caches()
    return {m: d for m, d in required.items() if importlib.util.find_spec(m) is None}


def _wheel_for(dist: str, wheel_dir: Path) -> Path | None:
    for whl in sorted(wheel_dir.glob("*.whl")):
        if _norm(whl.name.split("-")[0]) == _norm(dist):
            return whl
    return None


def _pip_available() -> bool:
    return importlib.util.find_spec("pip") is not None


def ensure_installed(required: dict, wheel_dir: Path, target: Path) -> tuple[str, str, list]:
    """Installs the missing modules' wheels from `wheel_dir` into `target` and prepends it to sys.path.

    Returns (status, figure, installed distributions) for the check's table. pip is used when this Python
    has it (`pip install --no-index --find-links DIR --no-deps --target TMP`); else the wheels, all pure
    Python or manylinux, are unpacked as they are (a wheel is a zip of its install tree).
    """
    need = missing_modules(required)
    if not need:
        return "ok", "all present: " + ", ".join(sorted(required)), []
    dists = sorted(set(need.values()))
    wheels = {d: _wheel_for(d, wheel_dir) for d in dists} if wheel_dir.is_dir() else {d: None for d in dists}
    absent = [d for d, w in wheels.items() if w is None]
    if absent:
        return ("failed", f"missing {', '.join(absent)} and no wheel in {wheel_dir}: run `make gpu-wheels` on a "
                f"networked machine and copy {wheel_dir.name}/ along", [])
    target.mkdir(parents=True, exist_ok=True)
    if _pip_available():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheel_dir),
               "--no-deps", "--target", str(target), *(str(w) for w in wheels.values())]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return "failed", "pip install: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:160], []
        how = "pip --target"
    else:
        for whl in wheels.values():
            with zipfile.ZipFile(whl) as z:
                z.extractall(target)
        how = "unpacked"
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    still = missing_modules(need)
    if still:
        return "failed", f"installed but not importable: {', '.join(sorted(still))}", dists
    return "ok", f"installed {', '.join(dists)} into {target} ({how})", dists
