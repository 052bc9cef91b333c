# Two commands do everything on a fresh machine (see README "Quick start"):
#   make tutorial   create .venv, install, run every notebook headless (quick profile) into build/
#   make test       create .venv, install, ruff + unit tests + every notebook (quick profile)
# Teacher kit: make slides   the paper's story as an offline deck (Marp: HTML + PDF) + a one-page handout (build/slides/)
#              make figures  regenerate every committed figure from recorded runs and weights (no training)
# Book:        make book     every notebook executed and rendered into a static HTML site (build/book/, docs/book.md)
# Other targets: make install, make lint, make format, make clean, make bench (training speed, benchmarks/);

PYTHON ?= python3
VENV ?= .venv
BUILD ?= build
SENET_PROFILE ?= quick
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The book serves MathJax from npm's package (book/package.json), never from a CDN.
MATHJAX := book/node_modules/.installed
# The slides are rendered by Marp CLI from npm (slides/package.json) and Debian's Chromium.
MARP := slides/node_modules/.installed
# Jupyter's own matplotlib backend: figures become cell outputs, which the book shows.
INLINE_MPL := module://matplotlib_inline.backend_inline

# Notebook runs write into build/, never into the committed figures/ and results/.
RUN_ENV = SENET_PROFILE=$(SENET_PROFILE) MPLBACKEND=Agg \
	SENET_FIGURES_DIR=$(CURDIR)/$(BUILD)/$(1)/figures \
	SENET_CHECKPOINT_DIR=$(CURDIR)/$(BUILD)/$(1)/checkpoints \
	SENET_RESULTS_DIR=$(CURDIR)/$(BUILD)/$(1)/results

.PHONY: install tutorial test lint format clean slides figures bench book

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(MARP): slides/package.json slides/package-lock.json
	@command -v npm > /dev/null || { echo "the slides are rendered by Marp from npm: install Node.js (npm) and Chromium, then run make again"; exit 2; }
	npm ci --prefix slides --no-audit --no-fund --loglevel=error
	touch $(MARP)

$(MATHJAX): book/package.json book/package-lock.json
	@command -v npm > /dev/null || { echo "the book serves MathJax from its npm package: install Node.js (npm), then run make again"; exit 2; }
	npm ci --prefix book --no-audit --no-fund --loglevel=error
	touch $(MATHJAX)

tutorial: $(STAMP)
	@echo "== senet-lib $$($(PY) -m senet_lib --version | cut -d' ' -f2), profile $(SENET_PROFILE); the data found:"
	@$(PY) -m senet_lib data
	@echo "== running every notebook headless with papermill (a progress bar per notebook; slowest cells listed)"
	$(call RUN_ENV,tutorial) $(PY) scripts/run_notebooks.py --output-dir $(BUILD)/tutorial/notebooks
	@echo "Executed notebooks: $(BUILD)/tutorial/notebooks   figures: $(BUILD)/tutorial/figures"
	@if grep -l "USING SYNTHETIC DATA" $(BUILD)/tutorial/notebooks/*.ipynb > /dev/null 2>&1; then \
		echo "=========================================================================="; \
		echo " CIFAR-10 could not be had (not on disk, download failed): these notebooks"; \
		echo " ran on SYNTHETIC data, labelled 'synthetic shapes (not CIFAR)' everywhere:"; \
		grep -l "USING SYNTHETIC DATA" $(BUILD)/tutorial/notebooks/*.ipynb | sed 's/^/   /'; \
		echo " To use CIFAR-10, see data/README.md, then run 'make tutorial' again."; \
		echo "=========================================================================="; \
	fi

# The notebooks run as make tutorial runs them, but with figures kept as outputs; then Sphinx renders them.
book: $(STAMP) $(MATHJAX)
	$(call RUN_ENV,book-run) MPLBACKEND=$(INLINE_MPL) $(PY) scripts/run_notebooks.py --output-dir $(BUILD)/book-run/notebooks
	$(PY) scripts/build_book.py --notebooks $(BUILD)/book-run/notebooks --results $(BUILD)/book-run/results --out $(BUILD)/book

slides: $(STAMP) $(MARP)
	$(PY) scripts/build_slides.py --out $(BUILD)/slides

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py

figures: $(STAMP)
	$(PY) scripts/make_figures.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# nbmake's one run of the notebooks is kept (conftest.py) and rendered by the book's browser test.
test: lint $(MATHJAX) $(MARP)
	rm -rf $(BUILD)/test/executed
	$(call RUN_ENV,test) SENET_KEEP_EXECUTED=$(CURDIR)/$(BUILD)/test/executed $(PY) -m pytest tests notebooks --nbmake --nbmake-timeout=900 -p no:cacheprovider

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
	$(PY) -m nbstripout notebooks/*.ipynb

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache
