# The two commands a fresh machine needs (Python 3.11 and make; everything else is installed here):
#   make demo   install, then run the whole lifecycle on the adult data set
#   make test   install, then lint, check import contracts and run every test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,text]"
	touch $(STAMP)

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/check

check: test

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
