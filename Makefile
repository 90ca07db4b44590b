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

# The main job on the default material: make its BTF (skipped when it exists), train NeuMIP with
# the cpu preset (about 10 minutes on 2 cores) and evaluate it on the held-out directions.
demo: install
	test -f outputs/data/weave.h5 || $(VENV)/bin/btf-generate material=weave \
		out=outputs/data/weave.h5 preview=$(DEMO)/weave_preview.png
	$(VENV)/bin/neumip-train data=weave preset=cpu out_dir=$(DEMO)/neumip_weave
	@echo "demo: data outputs/data/weave.h5; model, eval.md and eval_psnr.png in $(DEMO)/neumip_weave/checkpoints"

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) outputs .pytest_cache
