# Two commands do all the set-up on a fresh machine:
#   make run    create .venv if needed, then start the app
#   make test   create .venv if needed (and Chromium for the browser tests), lint, run every test
# CVAE_DATA_DIR (the MNIST folder) defaults to ../shared/data/mnist beside this project when it exists.

VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_MNIST := $(abspath $(CURDIR)/../shared/data/mnist)
export CVAE_DATA_DIR ?= $(if $(wildcard $(SHARED_MNIST)),$(SHARED_MNIST),)

.PHONY: run test venv chromium bench report

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Streamlit runs every rerun in a new thread and glibc gives threads malloc arenas of their own,
# each keeping what was freed in it: two arenas hold the server ~300 MB smaller (benchmarks/).
run: venv
	MALLOC_ARENA_MAX=2 $(PY) -m streamlit run app/streamlit_app.py

test: venv chromium
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: venv chromium
	$(PY) -m benchmarks

report: venv
	$(PY) -m benchmarks.report
