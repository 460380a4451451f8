# Two entry points: `make demo` (install, then run the demo) and `make test` (everything CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck rules pytest prometheus bench

# torch==2.13.0 first: that CPU build lies in pip's local find-links on these machines;
# letting another package pull torch from PyPI would download a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/weave-stream demo

# promtool and the Prometheus server come from Debian's `prometheus` package.
prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  echo "installing Debian's prometheus package (promtool + server) ..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

lint: install
	$(BIN)/ruff check weave_stream tests bench
	$(BIN)/ruff format --check weave_stream tests bench

typecheck: install
	$(BIN)/mypy

rules: prometheus
	@if ls alerts/*.yml >/dev/null 2>&1; then \
	  promtool check rules alerts/*.yml && promtool test rules alerts/tests/*.yml; \
	else echo "no alerting rules yet"; fi

# Three processes on two cores, whole files to each (a file's tests share fixtures and
# run in order): the integration tests mostly wait on workers and the broker (load
# average ~1.5 with two), so a third process shortens the run.
pytest: install prometheus
	$(BIN)/python -m pytest -n 3 --dist loadfile

test: install prometheus
	$(BIN)/python -m pip check
	$(MAKE) --no-print-directory lint typecheck rules pytest

bench: install
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done
