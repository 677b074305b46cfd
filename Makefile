# SANA-WM for ComfyUI. `make demo` runs the default workflow; `make test` runs every test.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PORT  ?= 8188
WEIGHTS ?=
PYTEST_ARGS ?=

.PHONY: setup serve demo test bench clean

setup:
	@bash scripts/setup_env.sh

$(PY):
	@bash scripts/setup_env.sh

serve: $(PY)
	@bash scripts/setup_env.sh >/dev/null
	@echo "ComfyUI with SANA-WM on http://127.0.0.1:$(PORT) (models in comfy_base/models)"
	exec $(PY) $(VENV)/ComfyUI/main.py --listen 127.0.0.1 --port $(PORT) \
	  --base-directory comfy_base --database-url sqlite:///$(CURDIR)/comfy_base/user/comfyui.db \
	  --disable-auto-launch --disable-api-nodes $(if $(shell $(PY) -c 'import torch;print(int(torch.cuda.is_available()))' 2>/dev/null | grep 1),,--cpu)

demo: $(PY)
	@bash scripts/setup_env.sh >/dev/null
	$(PY) scripts/demo.py $(if $(WEIGHTS),--weights $(WEIGHTS),)

test: $(PY)
	@bash scripts/setup_env.sh
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests $(PYTEST_ARGS)

bench: $(PY)
	$(PY) benchmarks/bench_dit_cpu.py

clean:
	rm -rf comfy_base/output test-artifacts
