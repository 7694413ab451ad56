# The few commands a person types. Each one sets up .venv first if it is missing.
#   make book     build the book into _build/html (runs every notebook, with a cache)
#   make test     lint, unit tests, every notebook under nbval, the book with warnings as errors
#   make bench    our GPT against Hugging Face's GPT-2: training tokens/s on this machine

VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
# -W: warnings are errors; -n: nitpicky (every cross-reference must resolve).
BOOK_FLAGS ?= -W -n --keep-going

.PHONY: setup book test lint unit nbval bench clean

setup: $(STAMP)

# The CPU build of PyTorch first (torch==2.13.0 resolves to a local wheel here); a bare
# `torch` requirement with no torch installed would pull several GB of CUDA packages.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -r requirements.txt
	@touch $(STAMP)

book: setup
	$(VENV)/bin/jupyter-book build . $(BOOK_FLAGS)

lint: setup
	$(VENV)/bin/ruff check .

unit: setup
	$(VENV)/bin/pytest tests -n auto -q

# --dist loadfile keeps each notebook's cells on one worker (plain `load` scatters them).
# One thread per kernel: two workers share the two cores instead of fighting over them.
nbval: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest notebooks --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=300 -n auto --dist loadfile -q

test: lint unit nbval book

bench: setup
	$(PYTHON) -m gptcourse.bench

clean:
	rm -rf _build student
