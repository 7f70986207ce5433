# The two commands of the README. Each creates .venv and installs what it needs on first use:
# torch pinned first (a looser request would pull a multi-GB GPU build), then optbench itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.optbench-installed
BENCH_RESULTS ?= results/bench

.PHONY: install bench test lint clean-bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default: score the example submission against the references on
# the smoke suite (Ray Tune on this machine), write the leaderboard, then the fixed-model report.
bench: $(STAMP)
	$(BIN)/optbench submit submissions/example-nadamw --trials 4 --studies 2 --results $(BENCH_RESULTS)
	$(BIN)/optbench report fixed-model --results $(BENCH_RESULTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy harness sweeps reports
	$(BIN)/lint-imports --no-cache

# The whole suite, with what it needs beyond Python (headless Chromium, a local SLURM cluster)
# installed and started by tests/with-services.sh when it can be (root), named when it cannot.
# Two pytest-xdist workers, each test file whole in one (see tests/conftest.py).
test: $(STAMP) lint
	CI=$${CI:-false} tests/with-services.sh $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

clean-bench:
	rm -rf $(BENCH_RESULTS)
