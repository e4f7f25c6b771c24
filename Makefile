# Two commands do all the set-up on a fresh machine:
#   make run    create .venv if needed, then start the app on http://localhost:8501
#   make test   create .venv if needed (and the Debian packages the tests drive), lint, run every test
# The app listens on localhost only; `make run CVAE_HOST=0.0.0.0` (or CVAE_HOST in the environment)
# serves it to the network, CVAE_PORT picks another port.
# CVAE_DATA_DIR (the MNIST folder) defaults to ../shared/data/mnist beside this project when it exists.

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
CVAE_HOST ?= localhost
CVAE_PORT ?= 8501
SHARED_MNIST := $(abspath $(CURDIR)/../shared/data/mnist)
export CVAE_DATA_DIR ?= $(if $(wildcard $(SHARED_MNIST)),$(SHARED_MNIST),)

# Debian packages the tests use: Chromium (browser tests), nginx and PostgreSQL (tests/test_replicas.py).
# Each pair is "package:how to tell it is installed".
SYSTEM_PACKAGES := chromium:/usr/bin/chromium nginx:/usr/sbin/nginx postgresql:/usr/lib/postgresql/*/bin/postgres

.PHONY: run test venv system-packages bench report checkpoints screenshots

# pip prints what it collects and installs: the first run downloads torch (~1 GB with its CUDA
# libraries) and takes several minutes, so the steps are shown rather than hidden.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "==> [1/3] creating the virtual environment $(VENV)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "==> [2/3] installing the pinned requirements (first time: several minutes, torch is large)"
	$(PIP) install --progress-bar on -r requirements-dev.txt
	@echo "==> [3/3] installing this project in editable mode"
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	@touch $@
	@echo "==> environment ready"

venv: $(VENV)/.installed

# One apt-get call for whatever is missing, with apt's own progress; as root, or through sudo.
# Without apt-get (not Debian) it says what to install and goes on: those tests then skip.
system-packages:
	@missing=; for pair in $(SYSTEM_PACKAGES); do \
	  ls $${pair#*:} >/dev/null 2>&1 || missing="$$missing $${pair%%:*}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "==> please install:$$missing (the tests that need them will skip)"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	echo "==> installing Debian packages for the tests:$$missing"; \
	$$SUDO apt-get update && $$SUDO apt-get install -y $$missing

# Streamlit runs every rerun in a new thread and glibc gives threads malloc arenas of their own,
# each keeping what was freed in it: two arenas hold the server ~300 MB smaller (benchmarks/).
run: venv
	@echo "==> starting the app on http://$(CVAE_HOST):$(CVAE_PORT) (Ctrl-C stops it)"
	MALLOC_ARENA_MAX=2 $(PY) -m streamlit run app/streamlit_app.py \
	  --server.address=$(CVAE_HOST) --server.port=$(CVAE_PORT)

test: venv system-packages
	@echo "==> ruff"
	$(PY) -m ruff check .
	@echo "==> pytest"
	$(PY) -m pytest

bench: venv system-packages
	$(PY) -m benchmarks

report: venv
	$(PY) -m benchmarks.report

# Rebuild every shipped checkpoint from scratch (checkpoints/recipe.toml; hours on 2 cores).
checkpoints: venv
	$(PY) -m cvae_core.recipe

# Regenerate docs/screenshots/ by driving the app in Chromium (the tests never write them).
screenshots: venv system-packages
	$(PY) -m tests.screenshots
