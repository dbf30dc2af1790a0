# `make demo` and `make test` create or reuse .venv and (re)install the package whenever
# pyproject.toml changed, then run the demo or the test suite.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench-deps

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,tpu-aot]'
	touch $(STAMP)

# The demo is CPU work; without JAX_PLATFORMS the TPU runtime that .venv holds for ahead-of-time
# TPU compiles would probe for a TPU and log its failure.
demo: $(STAMP)
	JAX_PLATFORMS=$${JAX_PLATFORMS:-cpu} $(VENV)/bin/lawsearch demo

test: $(STAMP)
	$(VENV)/bin/pytest -n 2 --durations=15

# Peers for the CPU benchmarks under experiments/ (transformers and torch's CPU build: PyPI's Linux
# torch wheel is the CUDA build with GBs of CUDA libraries; PyTorch's CPU index serves 2.13.0+cpu,
# which satisfies the extra's torch==2.13.0 and ranks above it).
bench-deps: $(STAMP)
	$(PY) -m pip install -q --extra-index-url https://download.pytorch.org/whl/cpu \
		-e '.[test,tpu-aot,peer]'
