# Two entry points on a fresh machine with only python3 and pip:
#   make reproduce   set up .venv, then run the whole study (ved reproduce)
#   make test        set up .venv, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: reproduce test lint demo bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned: this CPU build lies on disk; an unpinned one pulls a multi-GB CUDA build
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
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
