#!/usr/bin/env python
"""`make gpu-check`: every GPU check this pack needs, in one bounded run that prints one Markdown table.

    python scripts/gpu_check.py [--wheels gpu_wheels] [--out out/gpu_check.md] [--smoke]

Made for GPU time that is scarce and short: a machine with an NVIDIA GPU, CUDA PyTorch, Triton,
transformers and safetensors, no network and no `make setup`. The missing pure-Python packages
(diffusers, the reference) come from the wheel folder `make gpu-wheels` prepared on a networked machine;
they are installed into a temporary directory, never into that Python. The engine (`sana_wm_core`) runs
without ComfyUI. Each section runs in its own subprocess under its own time box (`BUDGETS`), so a slow
or hung part is reported as `timeout` and the others still run; the whole run stays under ~6 minutes.
Without a GPU (or with --smoke) the same sections run on the CPU with tiny shapes, in well under
3 minutes on 2 cores: that is what CI runs (tests/test_gpu_check.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_check_wheels as wheels  # noqa: E402

SECTIONS_SCRIPT = Path(__file__).resolve().parent / "gpu_check_sections.py"
# (section, title, time box in seconds on a GPU, in smoke mode). GPU boxes sum to 340 s, the total cap is 345 s:
# with start-up the whole check stays under the 6 minutes.
BUDGETS = [
    ("env", "environment", 20, 60),
    ("cuda", "CUDA test subset", 70, 120),
    ("bench161", "bench_dit_gpu 161 frames", 35, 60),
    ("bench961", "bench_dit_gpu 961 frames", 55, 60),
    ("lowvram", "Stage 1 961 frames in 24 GiB: offload=block vs ComfyUI low VRAM", 75, 60),
    ("refiner", "refiner at full width", 45, 60),
    ("streaming", "streaming variant: s per chunk, stages overlapped, chunked decode", 40, 45),
]
TOTAL_BUDGET_S = {False: 345, True: 170}  # wall-clock cap for all sections together


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def run_section(name: str, smoke: bool, timeout: float, env: dict) -> list:
    """Runs one section in a subprocess; returns its rows, plus a `timeout`/`failed` row if it did not finish."""
    cmd = [sys.executable, str(SECTIONS_SCRIPT), name] + (["--smoke"] if smoke else [])
    t0 = time.perf_counter()
    rows, out, err, status = [], "", "", None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, timeout), env=env, cwd=ROOT)
        out, err = proc.stdout, proc.stderr
        if proc.returncode != 0:
            status = ("failed", f"exit {proc.returncode}: {_last_line(err)}")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        status = ("timeout", f"stopped after its {timeout:.0f} s time box")
    for line in out.splitlines():
        if line.startswith("ROW "):
            rows.append(json.loads(line[4:]))
    if status is not None or not rows:
        status = status or ("failed", f"no result: {_last_line(err)}")
        rows.append({"check": "(rest of section)" if rows else "(section)", "status": status[0], "figure": status[1]})
    for r in rows:
        r["section"] = name
    rows[-1]["seconds"] = time.perf_counter() - t0
    return rows


def table(rows: list, header: str) -> str:
    lines = [header, "", "| section | check | status | figure |", "|---|---|---|---|"]
    for r in rows:
        fig = str(r["figure"]).replace("|", "/")
        secs = f" ({r['seconds']:.0f} s)" if "seconds" in r else ""
        lines.append(f"| {r['section']}{secs} | {r['check']} | {r['status']} | {fig} |")
    return "\n".join(lines) + "\n"


def _cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no torch at all is reported by the env section
        return False


def parse_requires(items: list) -> dict:
    """`--require MODULE[=DIST]` entries as {module: dist}."""
    out = {}
    for item in items:
        mod, _, dist = item.partition("=")
        if not mod:
            raise SystemExit(f"--require {item!r}: use MODULE or MODULE=DISTRIBUTION")
        out[mod] = dist or mod
    return out


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", default=str(wheels.DEFAULT_DIR), help="folder made by `make gpu-wheels`")
    ap.add_argument("--out", default=str(ROOT / "out" / "gpu_check.md"), help="also write the table here")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (default when there is no GPU)")
    ap.add_argument("--only", nargs="+", choices=[b[0] for b in BUDGETS], help="run only these sections")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="multiply every time box (a slower or busier machine)")
    ap.add_argument("--require", action="append", default=[], metavar="MODULE[=DIST]",
                    help="one more module the sections need (installed from --wheels when missing)")
    ap.add_argument("--download-wheels", action="store_true", help="fill --wheels from PyPI (make gpu-wheels)")
    args = ap.parse_args(argv)

    if args.download_wheels:
        files = wheels.download(Path(args.wheels))
        size = sum(f.stat().st_size for f in files) / 2 ** 20
        print(f"{len(files)} wheels, {size:.1f} MiB in {args.wheels}")
        return 0

    smoke = args.smoke or not _cuda_available()
    start = time.perf_counter()
    required = {**wheels.GPU_WHEELS, **parse_requires(args.require)}
    with tempfile.TemporaryDirectory(prefix="sana_wm_gpu_check_") as tmp:
        status, figure, _ = wheels.ensure_installed(required, Path(args.wheels), Path(tmp) / "site")
        rows = [{"section": "wheels", "check": f"packages from {Path(args.wheels).name}/", "status": status,
                 "figure": figure}]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(Path(tmp) / "site"), str(ROOT), env.get("PYTHONPATH", "")])
        env["GPU_CHECK_EXTRA_MODULES"] = ",".join(parse_requires(args.require))
        env["GPU_CHECK_TARGET"] = str(Path(tmp) / "site")
        for name, title, box_gpu, box_smoke in BUDGETS:
            if args.only and name not in args.only:
                continue
            left = args.time_scale * TOTAL_BUDGET_S[smoke] - (time.perf_counter() - start)
            box = min(args.time_scale * (box_smoke if smoke else box_gpu), left)
            if box < 5:
                rows.append({"section": name, "check": title, "status": "skipped",
                             "figure": "no time left in the run's budget"})
                continue
            sec_env = dict(env)
            if smoke and name == "cuda":
                sec_env["TRITON_INTERPRET"] = "1"  # the Triton kernel on CPU tensors (must be set before import)
            rows += run_section(name, smoke, box, sec_env)
            print(f"gpu-check: {name} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    mode = "smoke mode on the CPU (tiny shapes)" if smoke else "GPU"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = table(rows, f"### make gpu-check: {mode}, {when}, {time.perf_counter() - start:.0f} s")
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"(written to {out})", file=sys.stderr)
    bad = [r for r in rows if r["status"] in ("failed", "timeout")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
