# Two commands do all set-up on a fresh machine:
#   make demo   -> venv + dependencies, then the live pipeline on the built-in synthetic clip with the shipped model
#   make test   -> venv + dependencies (+ Debian's chromium for the browser test), then lint (ruff, mypy) and the
#                  whole test suite; any finding fails it
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.10 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch 2.13.0: on a machine without an NVIDIA GPU this resolves to the CPU build (a multi-GB CUDA build otherwise).
TORCH  ?= torch==2.13.0
APT_PACKAGES := chromium chromium-driver

.PHONY: setup demo lint test bench apt clean
.DEFAULT_GOAL := demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One resolve for everything: installing extras one by one lets pip drag numpy 2 / cv2 5 in behind mediapipe's back.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[all]"
	touch $@

setup: $(VENV)/.installed

# The oldest onnxruntime that installs for this Python, in a venv of its own: the DFM export test loads its file
# there, as older DeepFaceLive builds (onnxruntime 1.8-1.12) would: 1.15.0 is the oldest wheel for Python 3.11,
# 1.17.0 for 3.12.
ORT_OLDEST ?= $(shell $(PYTHON) -c 'import sys; print("onnxruntime==" + ("1.15.0" if sys.version_info < (3, 12) else "1.17.0"))')
ORT_VENV   ?= .venv-ort-oldest
$(ORT_VENV)/.installed:
	$(PYTHON) -m venv $(ORT_VENV)
	$(ORT_VENV)/bin/python -m pip install --quiet "$(ORT_OLDEST)" "numpy<2"
	touch $@

# Debian's chromium drives the browser end-to-end test (Playwright's own browser download does not work offline).
apt:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(APT_PACKAGES); \
	fi

demo: setup
	$(BIN)/swapcam demo

# Settings in pyproject.toml ([tool.ruff], [tool.mypy]). `ruff format .` rewrites what --check complains about.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy realtime models training

test: setup apt lint $(ORT_VENV)/.installed
	SWAPCAM_ORT_OLDEST=$(ORT_VENV)/bin/python $(BIN)/python -m pytest

bench: setup
	$(BIN)/swapcam bench --json bench-live.json

clean:
	rm -rf $(VENV) $(ORT_VENV) build *.egg-info
