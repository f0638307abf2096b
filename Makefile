# uss_nb: every target installs what it needs into the project virtual environment .venv
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU torch by default; a GPU user passes a CUDA build, e.g.
#   make TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cu124" test
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install demo test nbtest pytest lab docs export clean-nbs clean

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

test: nbtest pytest

nbtest: $(STAMP)
	$(BIN)/nbdev_export
	cd nbs && ../$(BIN)/nbdev_test --path .

# pytest exits 5 when it collects no test: tests/ always has tests, so that is a failure, said plainly
pytest: $(STAMP)
	@$(BIN)/python -m pytest tests/ -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests in tests/: that is an error here"; exit 1; fi; \
	exit $$rc

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=nbs

export: $(STAMP)
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export

# the site: nbdev_docs where Quarto is installed; offline, nbdev's processing + smalldocs on the same _quarto.yml
docs: $(STAMP)
	$(BIN)/nbdev_export
	@if command -v quarto >/dev/null 2>&1; then $(BIN)/nbdev_docs; \
	else $(BIN)/python tools/build_docs.py; fi

clean:
	rm -rf outputs _docs _proc
