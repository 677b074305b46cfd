# SANA-WM for ComfyUI. `make demo` runs the default workflow; `make test` runs every test.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PORT  ?= 8188
WEIGHTS ?=
FRONTEND ?=
PYTEST_ARGS ?=
GPU_WHEELS ?= gpu_wheels
GPU_CHECK_OUT ?= out/gpu_check.md
# gpu-check must run on GPU machines that have CUDA torch but no .venv (and no network): their python3.
GPU_PY := $(if $(wildcard $(PY)),$(PY),python3)

.PHONY: setup serve demo test bench gpu-check gpu-wheels clean

setup:
	@bash scripts/setup_env.sh

# WEIGHTS=tiny serves the generated tiny checkpoints (CPU); FRONTEND=latest the newest frontend; previews on.
serve:
	@bash scripts/setup_env.sh >/dev/null
	exec $(PY) scripts/serve.py --port $(PORT) $(if $(WEIGHTS),--weights $(WEIGHTS),) \
	  $(if $(FRONTEND),--frontend $(FRONTEND),)

demo:
	@bash scripts/setup_env.sh >/dev/null
	$(PY) scripts/demo.py $(if $(WEIGHTS),--weights $(WEIGHTS),)

test:
	@bash scripts/setup_env.sh
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests $(PYTEST_ARGS)

bench:
	@bash scripts/setup_env.sh >/dev/null
	$(PY) benchmarks/bench_dit_cpu.py

# One bounded run (< 6 min on a GPU; smoke mode on a CPU in < 3 min) that prints one Markdown table.
gpu-check:
	$(GPU_PY) scripts/gpu_check.py --wheels $(GPU_WHEELS) --out $(GPU_CHECK_OUT)

# On a networked machine: the pinned pure-Python wheels gpu-check installs on an offline GPU machine.
gpu-wheels:
	$(GPU_PY) scripts/gpu_check.py --download-wheels --wheels $(GPU_WHEELS)

clean:
	rm -rf comfy_base/output test-artifacts
