# The few commands a person types. Each one sets up .venv first if it is missing.
#   make book     build the book into _build/html (runs every notebook, with a cache)
#   make test     lint, unit tests, every notebook under nbval, the book with warnings as errors,
#                 then the book and its PDF in a browser (make browser)
#   make bench    our GPT against Hugging Face's GPT-2, then the optimisation ladder, on this machine
#   make gpu      on an NVIDIA GPU: every notebook, the ladder and the MFU benchmark, recorded
#   make student  the student edition into student/: the chapters with the solutions taken out
#                 (CHAPTERS=04,07: those chapters only)
#   make pdf      the whole book as one PDF, _build/html/build-a-gpt.pdf (the book's page links it),
#                 printed offline by Debian's Chromium after make book
#   make browser  the book and its PDF (make pdf) in a real browser, offline (Chromium, Playwright)
#   make repository URL=https://github.com/you/build-a-gpt   a fork's own address, everywhere
#   make release VERSION=0.2.0   commit and tag release v0.2.0, which the install cells and Colab links name

VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
# PyTorch's CPU build, from PyTorch's own index: PyPI's Linux wheel of torch is the CUDA build,
# several GB of nvidia-* packages. The one place this is said; .github/workflows/book.yml runs
# `make`, so CI uses it too. Point it at a mirror with `make setup TORCH_CPU_INDEX=...`.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# -W: warnings are errors; -n: nitpicky (every cross-reference must resolve).
BOOK_FLAGS ?= -W -n --keep-going
# Values a person passes (make student CHAPTERS=04,07) reach the recipes as environment variables,
# read there as "$$NAME": the shell never parses them as code, so `CHAPTERS='"; rm -rf ~; "'` is
# just a wrong chapter list. (GNU make exports command-line variables anyway; this says so.)
# A value is text, never make code either: `URL='$(shell cmd)'` would run cmd when make expands
# the variable to export it; taken verbatim ($(value ...)) into a simple variable, it is not.
$(foreach v,CHAPTERS URL BRANCH VERSION,$(if $(filter command line environment,$(origin $(v))),$(eval override $(v) := $$(value $(v)))))
export TORCH_CPU_INDEX BOOK_FLAGS CHAPTERS URL BRANCH VERSION

# The student edition, a fork's address and a release need only nbformat, PyYAML and packaging
# (pyproject.toml's dependency group `tools`): a small venv of their own, not the full set-up.
TOOLS_VENV   ?= .venv-tools
TOOLS_PYTHON := $(TOOLS_VENV)/bin/python
TOOLS_STAMP  := $(TOOLS_VENV)/.setup-done

.PHONY: setup book pdf test lint unit nbval bench ladder gpu clean student browser repository release tools-venv

# RequireJS and the ipywidgets embedder, served by the book itself so that pages with widgets
# need no CDN (tools/book_extension.py adds them to those pages). From the npm registry.
WIDGETS_JS := $(VENV)/share/build-a-gpt/widgets
# System packages (Chromium for `make browser`, npm) come from apt, as root or through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

setup: $(STAMP) $(WIDGETS_JS)/embed-amd.js

# torch first, from TORCH_CPU_INDEX only (--index-url: PyPI is not asked, so its CUDA build
# cannot be picked). Wheels pip is configured with (find-links, a local mirror) still count, and
# --retries 0 skips an index that cannot be reached at once instead of retrying it for minutes:
# offline with a local wheel, this takes seconds. A torch already installed is kept. Then the
# rest (requirements.txt: the package with its `book` and `test` extras), which finds torch there.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q --retries 0 --index-url "$$TORCH_CPU_INDEX" torch \
		|| { echo "No CPU build of torch for this Python from $$TORCH_CPU_INDEX: use a reachable" \
		"index (make setup TORCH_CPU_INDEX=...), or install torch into $(VENV) first." >&2; exit 1; }
	$(PYTHON) -m pip install -q -r requirements.txt
	@touch $(STAMP)

$(WIDGETS_JS)/embed-amd.js:
	@command -v npm >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y npm)
	rm -rf $(WIDGETS_JS) && mkdir -p $(WIDGETS_JS)
	cd $(WIDGETS_JS) && npm pack --silent @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 >/dev/null \
		&& tar xzf requirejs-2.3.8.tgz --strip-components=1 package/require.js \
		&& tar xzf jupyter-widgets-html-manager-1.0.15.tgz --strip-components=2 package/dist \
		&& rm -f *.tgz embed.js embed.js.map libembed-amd.js

book: setup
	$(VENV)/bin/jupyter-book build . $$BOOK_FLAGS

lint: setup
	$(VENV)/bin/ruff check .

# --durations: the slowest tests, printed last, so that a run over the 30-minute budget says where it went.
unit: setup
	$(VENV)/bin/pytest tests -n auto -q --durations=25 --ignore=tests/test_browser.py --ignore=tests/test_pdf.py

# --dist loadfile keeps each notebook's cells on one worker (plain `load` scatters them).
# One thread per kernel: two workers share the two cores instead of fighting over them.
nbval: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest notebooks --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=300 -n auto --dist loadfile -q

test: lint unit nbval book browser

# The whole book as one PDF (tools/book_pdf.py): the book again as a single page (Sphinx's
# singlehtml, into _build/pdf; the notebooks' outputs come from make book's cache), printed by
# Debian's Chromium, offline, into _build/html, where the published book links it.
pdf: book
	@test -x /usr/bin/chromium || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)
	$(PYTHON) tools/book_pdf.py

# The book and its PDF, then Debian's Chromium (never a browser downloaded by a test tool).
# BOOK_REQUIRED=1: here a missing book, PDF or browser fails the test; under plain `pytest` it
# skips, with the reason.
browser: pdf
	BOOK_REQUIRED=1 $(VENV)/bin/pytest tests/test_browser.py tests/test_pdf.py -q

# pip's --group (pip 25.1 or newer, hence the upgrade) installs a dependency group alone, without
# the package and its torch.
tools-venv: $(TOOLS_STAMP)
	@:  # (so that make says nothing when the venv is ready)
$(TOOLS_STAMP): pyproject.toml
	@test -x $(TOOLS_PYTHON) || python3 -m venv $(TOOLS_VENV)
	$(TOOLS_PYTHON) -m pip install -q --upgrade pip
	$(TOOLS_PYTHON) -m pip install -q --group tools
	@touch $(TOOLS_STAMP)

# student/ is committed (Colab opens it from the repository): commit it after this.
student: $(TOOLS_STAMP)
	$(TOOLS_PYTHON) tools/student_edition.py --out student $${CHAPTERS:+--chapters "$$CHAPTERS"}

# The repository's address (and with BRANCH=..., its branch) in _config.yml, every notebook's
# install cell, student/, README.md and book/setup.md: tools/set_repository.py. URL is checked first.
repository:
	@test -n "$$URL" || { echo "Usage: make repository URL=https://github.com/OWNER/NAME [BRANCH=main]" >&2; exit 2; }
	@$(MAKE) --no-print-directory tools-venv
	$(TOOLS_PYTHON) tools/set_repository.py "$$URL" $${BRANCH:+--branch "$$BRANCH"}

# tools/release.py: on a clean working tree, the version in pyproject.toml, the tag vVERSION in
# the install cells, the Colab links, README.md, book/setup.md and student/; one commit, tagged.
release:
	@test -n "$$VERSION" || { echo "Usage: make release VERSION=0.2.0 (then: git push origin HEAD vVERSION)" >&2; exit 2; }
	@$(MAKE) --no-print-directory tools-venv
	$(TOOLS_PYTHON) tools/release.py "$$VERSION"

bench: setup
	$(PYTHON) benchmarks/mfu.py
	$(PYTHON) benchmarks/ladder.py

# fp32 -> TF32 -> autocast -> SDPA -> torch.compile -> fused AdamW -> vocabulary 50,304 -> chunked
# loss -> the largest batch: on a CPU the rungs that apply, in about 15 s; on a GPU every rung, GPT-2 small.
ladder: setup
	$(PYTHON) benchmarks/ladder.py

# The GPU evidence the book shows (tools/gpu_run.py says what it runs and records). Set-up keeps
# a torch already installed, so on a GPU machine PyPI's torch (its Linux wheel is the CUDA build)
# goes in first; without an NVIDIA driver nothing is installed and the target refuses.
gpu:
	@command -v nvidia-smi >/dev/null || { echo "make gpu needs an NVIDIA GPU and its driver (there is no nvidia-smi here)." \
		"The GPU rows are recorded on such a machine; everything else runs on a CPU (make test)." >&2; exit 2; }
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q torch
	@$(MAKE) --no-print-directory setup
	$(PYTHON) tools/gpu_run.py

# (Not student/: it is committed.)
clean:
	rm -rf _build
