# One target per thing a person does. `make demo` and `make test` set up everything they need
# (.venv, dependencies, offline tools) on first use: a fresh clone needs Python 3.11+, make and npm.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv

# The offline copy of the California housing data (no internet on build machines): a `shared`
# folder beside this checkout, or beside the repository it was cloned from (a fresh clone in a
# temporary folder); with internet and no copy, scikit-learn downloads the data on first use.
ORIGIN := $(shell git config --get remote.origin.url 2>/dev/null)
DATA := $(firstword $(wildcard $(CURDIR)/../shared/data/scikit_learn_data $(if $(ORIGIN),$(ORIGIN)/../shared/data/scikit_learn_data)))
ifneq ($(DATA),)
export SCIKIT_LEARN_DATA ?= $(DATA)
endif
# HistGradientBoosting's OpenMP threads fight a server's own: one thread each (see services/inference/cli.py).
export OMP_NUM_THREADS ?= 1
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/.tools/venv/bin:$(PATH)
export CKV_SKIP_PACKAGE_UPDATE_CHECK := true
export TF_CLI_CONFIG_FILE :=

.PHONY: demo test lint bench tools lock lock-mlflow mlflow-image-tag clean

demo: $(STAMP)
	$(BIN)/housing demo

test: $(STAMP) tools
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check services tests benchmarks
	$(BIN)/ruff format --check services tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

tools:
	bash ci/install-tools.sh

# The same versions as the images: uv installs uv.lock (hashes verified) and refuses a lock that is stale
# against pyproject.toml (`make lock` refreshes it). --inexact keeps pip and uv itself in the venv.
$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --quiet --locked --inexact --extra dev
	touch $(STAMP)

$(UV): requirements/uv.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/uv.txt
	touch $(UV)

# uv.lock after a change to pyproject.toml (versions already locked stay); UPGRADE=1 moves every
# package to the newest version its range allows (the monthly refresh: review the diff, run make test).
lock: $(UV)
	$(UV) lock $(if $(UPGRADE),--upgrade)

# requirements/mlflow.txt, the MLflow server image's lock (every package and hash), from
# requirements/mlflow.in; UPGRADE=1 moves the unpinned ones. Then set mlflow.server.image.tag in
# values.yaml to what `make mlflow-image-tag` prints (tests/deploy/test_mlflow_image.py checks it).
lock-mlflow: $(UV)
	$(UV) pip compile requirements/mlflow.in --generate-hashes --quiet --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock-mlflow" \
		$(if $(UPGRADE),--upgrade) -o requirements/mlflow.txt

# The MLflow image's tag: its MLflow version and the first 12 hex digits of the sha256 of
# requirements/mlflow.txt followed by services/mlflow/Dockerfile (what images.yml pushes).
mlflow-image-tag:
	@printf '%s-%s\n' "$$(sed -n 's/^mlflow==\([^ ]*\).*/\1/p' requirements/mlflow.txt)" \
		"$$(cat requirements/mlflow.txt services/mlflow/Dockerfile | sha256sum | cut -c1-12)"

clean:
	-$(BIN)/housing db stop
	rm -rf .housing reports
