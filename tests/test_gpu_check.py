"""`make gpu-check` in smoke mode (CPU, tiny shapes): every section runs and the one table has its rows.

The wheel path is exercised with a probe wheel built here: the check must install it from the wheel
folder into its temporary target (with pip, no index) and every section's subprocess must import it
from there, exactly as diffusers is installed on an offline GPU machine.
"""
from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_check  # noqa: E402
import gpu_check_wheels  # noqa: E402

PROBE = "gpucheck_probe"


def _probe_wheel(folder: Path) -> Path:
    """A minimal valid pure-Python wheel holding the module `gpucheck_probe`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"{PROBE}/__init__.py": b'__version__ = "1.0"\n',
             f"{PROBE}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: 1.0\n".encode(),
             f"{PROBE}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                             b"Tag: py3-none-any\n"}
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{PROBE}-1.0.dist-info/RECORD,,")
    path = folder / f"{PROBE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{PROBE}-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def _rows(markdown: str) -> list:
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("section", "---"):
            rows.append({"section": cells[0].split(" (")[0], "check": cells[1], "status": cells[2],
                         "figure": cells[3]})
    return rows


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_check")
    _probe_wheel(tmp / "wheels")
    out = tmp / "table.md"
    # time boxes x3: CI shares 2 cores with other jobs; the run itself takes well under a minute of CPU
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--smoke",
                           "--wheels", str(tmp / "wheels"), "--out", str(out), "--require", PROBE,
                           "--time-scale", "3"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    return proc, out


def test_smoke_run_prints_and_writes_one_table_with_every_section(smoke):
    proc, out = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert text.strip() in proc.stdout
    assert text.startswith("### make gpu-check: smoke mode on the CPU")
    rows = _rows(text)
    by = {(r["section"], r["check"]): r for r in rows}
    assert {r["section"] for r in rows} == {"wheels", "env", "cuda", "bench161", "bench961", "lowvram", "refiner",
                                           "streaming"}
    expected_ok = [("cuda", "GDN Triton vs PyTorch scan, float32"), ("cuda", "GDN Triton vs PyTorch scan, bfloat16"),
                   ("cuda", "DiT bf16 vs diffusers bf16"), ("cuda", "refiner chunks"),
                   ("cuda", "fp8 weights (Stage-1 DiT)"), ("bench161", "bench_dit_gpu 17 frames: ours"),
                   ("bench161", "bench_dit_gpu 17 frames: diffusers"), ("lowvram",
                                                                        "Stage 1 17 frames, low VRAM (offload=block)"),
                   ("refiner", "refiner s/chunk at full width"), ("env", "device"), ("env", "wheels importable")]
    for key in expected_ok:
        assert by[key]["status"] == "ok", by.get(key)
    assert all(r["status"] in ("ok", "skipped") for r in rows), [r for r in rows if r["status"] not in ("ok",
                                                                                                       "skipped")]
    gdn = by[("cuda", "GDN Triton vs PyTorch scan, float32")]["figure"]
    for direction in ("bidir+den", "forward", "reverse"):
        assert direction in gdn
    assert "s/forward" in by[("bench161", "bench_dit_gpu 17 frames: ours")]["figure"]
    assert "FLOP floor" in by[("bench161", "bench_dit_gpu 17 frames: ours")]["figure"]
    assert "ours/diffusers" in by[("bench161", "bench_dit_gpu 17 frames: diffusers")]["figure"]
    assert by[("lowvram", "Stage 1 17 frames, low VRAM (offload=block)")]["figure"].startswith("fits")
    assert "s/chunk" in by[("refiner", "refiner s/chunk at full width")]["figure"]
    stream = by[("streaming", "streaming s per 1.5 s chunk / real-time factor")]
    assert stream["status"] == "ok" and "s/block" in stream["figure"] and "real-time factor" in stream["figure"]
    overlap = by[("streaming", "streaming stages overlapped == sequential")]
    assert overlap["status"] == "ok" and "bits identical" in overlap["figure"], overlap
    decode = by[("streaming", "causal VAE chunked == one-shot decode (fp32)")]
    assert decode["status"] == "ok" and "bits identical" in decode["figure"], decode
    flag = by[("cuda", "DiT ignores ComfyUI's math-SDPA flag")]
    assert flag["status"] == "ok" and "bits identical" in flag["figure"], flag


def test_missing_wheel_is_installed_into_a_temporary_target_every_section_imports(smoke):
    proc, out = smoke
    rows = {(r["section"], r["check"]): r for r in _rows(out.read_text())}
    wheel_row = next(r for (s, _), r in rows.items() if s == "wheels")
    assert wheel_row["status"] == "ok" and f"installed {PROBE}" in wheel_row["figure"], wheel_row
    assert "(pip --target)" in wheel_row["figure"]
    env_row = rows[("env", "wheels importable")]
    assert f"from the temporary target: {PROBE}" in env_row["figure"], env_row


def test_a_section_over_its_time_box_is_a_timeout_row_and_the_run_goes_on():
    rows = gpu_check.run_section("env", True, 0.3, env=dict(__import__("os").environ, PYTHONPATH=str(ROOT)))
    assert rows[-1]["status"] == "timeout" and rows[-1]["section"] == "env"
    assert "time box" in rows[-1]["figure"]


def test_missing_wheels_are_named_with_the_fix(tmp_path):
    status, figure, _ = gpu_check_wheels.ensure_installed({"no_such_module_xyz": "no-such-dist"}, tmp_path / "none",
                                                          tmp_path / "target")
    assert status == "failed" and "no-such-dist" in figure and "make gpu-wheels" in figure


def test_wheel_pins_come_from_the_lock_file():
    versions = gpu_check_wheels.locked_versions()
    pins = gpu_check_wheels.pins(gpu_check_wheels.GPU_WHEELS.values())
    assert f"diffusers=={versions['diffusers']}" in pins and len(pins) == len(gpu_check_wheels.GPU_WHEELS)
    with pytest.raises(ValueError, match="not pinned"):
        gpu_check_wheels.pins(["surely-not-a-locked-package"])
