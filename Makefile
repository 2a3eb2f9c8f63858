# Two commands for a newcomer: `make run` (the main job) and `make test` (the test suite).
# Both create .venv on first use and install pocketbert with every extra under constraints.txt; later runs
# reinstall only when pyproject.toml or constraints.txt changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pocketbert-installed
OUT ?= out/default
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM = false

.PHONY: run test lint format venv clean kotlin-test kernels

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,dev,demo]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/pocketbert run -o $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check pocketbert tests benchmarks
	$(BIN)/ruff format --check pocketbert tests benchmarks

test: lint kotlin-test kernels
	$(BIN)/python -m pytest -q

# The emulated CPU kernel families that 'pocketbert parity --kernels' and the tests use: Debian's qemu-user-static
# and an aarch64 Python with the same runtime versions, cached in ~/.cache/pocketbert/kernels (idempotent).
kernels: $(STAMP)
	$(BIN)/pocketbert kernels setup

# Android core (tokenizer, post-processing, manifest) compiled with the pinned kotlinc and tested with JUnit against
# golden vectors generated fresh by the pinned Python stack; ends with "N passed, N failed".
kotlin-test: $(STAMP)
	PYTHON=$(BIN)/python apps_sample/android/scripts/test-core.sh

format: $(STAMP)
	$(BIN)/ruff format pocketbert tests
	$(BIN)/ruff check --fix pocketbert tests

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache apps_sample/android/build
