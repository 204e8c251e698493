# layerlab: `make run` and `make test` install everything they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The tests also exercise the optional scale-out extras (PostgreSQL driver, Ray and
# SLURM launchers) and the real-browser test (playwright from the dev extra, Debian's chromium
# through scripts/install_browser.sh). Note: hydra-ray-launcher pins cloudpickle<3 (joblib goes to 1.5.x).
TEST_STAMP := $(VENV)/.installed-test
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test install install-scale install-torch test-torch bench mlflow-ui mlflow-server mlflow-server-stop clean

# Re-install only when pyproject.toml changes (idempotent: a second call does nothing).
# Graphviz (Debian's graphviz, for the model picture) only when `dot` is missing; never fails the install.
$(STAMP): pyproject.toml scripts/install_graphviz.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	sh scripts/install_graphviz.sh
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) scripts/install_browser.sh
	$(PY) -m pip install --quiet -e '.[dev,postgres,ray,slurm]'
	sh scripts/install_browser.sh
	touch $(TEST_STAMP)

install: $(STAMP)

install-scale: $(TEST_STAMP)

# backend=torch (optional, not in the suite): PyTorch's CPU build, then the backend tests on it.
install-torch: $(STAMP)
	$(PY) -m pip install --quiet -e '.[torch]'

test-torch: install-torch
	$(PY) -m experiments.check_layer SimpleDense ResidualDense --backends tensorflow,jax,torch

run: $(STAMP)
	$(PY) runner.py $(ARGS)

# Two pytest workers (pytest-xdist) take whole test files (module fixtures such as the benchmark runs and the
# servers stay in one process), in the order of tests/conftest.py (end-to-end files first): most end-to-end tests
# keep one core busy, so two workers use both cores of a 2-core machine (README, "Tests").
# PYTEST_WORKERS=0: one process, e.g. to debug a test. The 25 slowest tests are listed at the end: the suite must
# stay under 20 minutes on a 2-core machine, and CI's log then says where its time goes.
PYTEST_WORKERS ?= 2

test: $(TEST_STAMP)
	$(PY) -m pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder) --durations=25 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench.run_all $(BENCH_ARGS)

mlflow-ui: $(STAMP)
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db

# PostgreSQL + MLflow server on 127.0.0.1:5005 (see README, Scaling out); AUTH=1: with users and passwords.
mlflow-server: $(STAMP)
	scripts/mlflow_stack.sh start $(if $(filter 1,$(AUTH)),--auth)

mlflow-server-stop:
	scripts/mlflow_stack.sh stop

clean:
	rm -rf outputs multirun .pytest_cache
