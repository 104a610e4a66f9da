# Two entry points on a fresh machine with only python3 and pip:
#   make reproduce   set up .venv, then run the whole study (ved reproduce)
#   make test        set up .venv, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# torch's CPU build from PyTorch's own index, as its install page gives it (a plain `pip install torch`
# pulls a multi-GB CUDA build on Linux). A pip given its own source of wheels (find-links: a machine
# with a local mirror, CI's) is left to it. Set TORCH_INDEX yourself for a CUDA or ROCm build, or
# empty to use pip's configuration.
TORCH_INDEX ?= $(if $(shell python3 -m pip config list 2>/dev/null | grep -i find-links),,https://download.pytorch.org/whl/cpu)

.PHONY: reproduce test lint demo bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned, from TORCH_INDEX: an unpinned one from PyPI pulls a multi-GB CUDA build
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

reproduce: $(VENV)/.installed
	$(VENV)/bin/ved reproduce

test: $(VENV)/.installed
	$(PY) -m pytest

demo: $(VENV)/.installed
	$(VENV)/bin/ved serve

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) runs out .pytest_cache
