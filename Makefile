# Quick start: `make demo` and `make test` on a fresh machine. Both create .venv if absent.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= outputs/demo

.PHONY: install demo test lint clean

# torch==2.13.0 goes first: it is the local CPU build, and a looser request would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/btf-generate material=weave out=$(DEMO)/weave.h5 preview=$(DEMO)/weave_preview.png
	@echo "demo: BTF at $(DEMO)/weave.h5, preview sheet at $(DEMO)/weave_preview.png"

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) outputs .pytest_cache
