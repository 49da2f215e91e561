# The README's two commands: `make repro` (run the pipeline) and `make test` (run the tests).
# Both set up a virtual environment in .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of torch; on this project's machines it lies on local disk. Elsewhere, e.g.:
#   make TORCH='torch --index-url https://download.pytorch.org/whl/cpu'   (or TORCH=torch for CUDA)
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test check docs test-slow bench bench-data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH) 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -m pip install -q -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import torch, gensim, sentencepiece, datasets, accelerate, sklearn, matplotlib, dvc, pytest, ruff, mypy, sphinx"
	touch $@

repro: install
	dvc repro
	@echo; $(VENV)/bin/elmo report

test: install
	$(PY) -m pytest -q

# lint, formatting (ruff) and types (mypy), configured in pyproject.toml; CI runs it beside `make test`
check: install
	$(PY) -m ruff check pipeline stages tests scripts bench
	$(PY) -m ruff format --check pipeline stages tests scripts bench
	$(PY) -m mypy

# the docs site (Sphinx + MyST Markdown, docs/): reference pages and benchmark tables checked
# against the code and results/*.json, then built with every warning an error
docs: install
	$(PY) scripts/reference_pages.py --check
	$(PY) scripts/benchmarks_page.py --check
	$(PY) -m sphinx -q -W --keep-going -b html docs docs/_build/html

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) bench/word2vec.py
	$(PY) bench/pretrain_throughput.py
	$(PY) bench/embed_throughput.py

# PTB sentences prepared for bench/gpu_check.sh on a machine without ../shared (carried there).
bench-data: install
	$(PY) stages/prepare.py --params configs/runs/bench-ptb.yaml --out bench-data/ptb --metrics bench-data/ptb.json

# Remove the pipeline's generated data and models (metrics/ and reports/ are tracked in git).
clean:
	rm -rf data/prepared data/word2vec models plots
