# uss_nb: every target installs what it needs into the project virtual environment .venv
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU torch by default; a GPU user passes a CUDA build, e.g.
#   make TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cu124" test
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install demo test nbtest outputs pytest browser-deps lab docs export clean-nbs clean

# notebooks executed at once by nbtest and docs
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

install: $(STAMP)

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/jupyter labextension list >/dev/null 2>&1 || true
	@touch $@

demo: $(STAMP)
	$(BIN)/uss demo --out outputs

test: browser-deps nbtest pytest

# every notebook run as nbdev_test runs it (cells flagged slow or cuda skipped, `eval: false` cells skipped, each
# notebook stopping at its first error), by tools/docs_exec.py, which keeps the outputs in _proc/: the docs test in
# pytest then only renders them, and no notebook runs twice. `cd nbs && nbdev_test` checks the same cells.
nbtest: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/python tools/build_docs.py --no-render --jobs $(JOBS)

# the module notebooks saved with their outputs: nbtest's executions (in _proc/) copied into nbs/ by cell id, then
# nbdev_clean, which keeps outputs (clear_all = False); tests/test_saved_outputs.py checks that they are current
outputs: nbtest
	$(BIN)/python tools/save_outputs.py
	$(BIN)/nbdev_clean

# Chromium and its driver for the browser tests (tests/test_docs_browser.py, tests/test_lab_browser.py), and KaTeX for
# the docs' maths, from apt when root; otherwise it says why not, and the browser tests skip saying the same (the docs
# then keep their maths as TeX). Quick when they are already installed.
BROWSER_PKGS := chromium chromium-driver libjs-katex
browser-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && [ -e /usr/share/javascript/katex/katex.min.js ]; then exit 0; \
	elif [ "$$(id -u)" != 0 ]; then echo "browser-deps: Chromium or KaTeX is not installed and we are not root: the browser tests will be skipped (as root: apt-get install $(BROWSER_PKGS))"; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "browser-deps: Chromium or KaTeX is not installed and there is no apt-get: the browser tests will be skipped"; \
	else echo "browser-deps: apt-get install $(BROWSER_PKGS)"; export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $(BROWSER_PKGS) >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1; apt-get install -y -q $(BROWSER_PKGS) >/dev/null; } \
	  || echo "browser-deps: apt-get could not install $(BROWSER_PKGS): the browser tests will be skipped"; fi

# pytest exits 5 when it collects no test: tests/ always has tests, so that is a failure, said plainly
pytest: $(STAMP)
	@$(BIN)/python -m pytest tests/ -q --durations=15; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests in tests/: that is an error here"; exit 1; fi; \
	exit $$rc

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=nbs

export: $(STAMP)
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export

# the site in _docs/: the notebooks executed (reused from nbtest when fresh), nbdev's processing, then the _quarto.yml
# project rendered by Quarto where it is installed, else offline by smalldocs (`nbdev_docs` also works with Quarto,
# without the examples' outputs)
docs: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/python tools/build_docs.py --jobs $(JOBS)

clean:
	rm -rf outputs _docs _proc _proc_part
