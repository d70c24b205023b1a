# Quick start: `make demo` runs the main job, `make test` runs the tests. Each sets up a virtual
# environment in .venv first (reusing a system-wide torch when one is installed).
#
# TORCH_SPEC is what pip installs for torch before the package: the CPU build 2.13.0 by default
# (the dev/CI machines carry its wheel). On a machine that already has the torch it wants
# (a CUDA or XPU build), run `make test TORCH_SPEC=` to keep it.

VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo test clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv --system-site-packages $(VENV)
	$(if $(TORCH_SPEC),$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)")
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/xpu-quant demo

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
