# Set-up and everyday tasks. Each target creates the virtual environment first when it is missing
# or was built from a different requirements.txt.
#   make train                  set up, then train the default experiment (cnn on the bundled digits)
#   make train ARGS="model=rnn"  ... with Hydra overrides
#   make test                   set up, then run the test suite (slow tests excluded)
#   make test-all               ... including the slow tests (what CI runs)
# VENV=/path/to/venv uses (or builds) the environment there instead of .venv.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.txt
ARGS ?=

.PHONY: setup train test test-all lint format clean

setup:
	@if ! cmp -s requirements.txt $(STAMP); then \
		echo "Setting up $(VENV) from requirements.txt"; \
		test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || exit 1; \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt || exit 1; \
		cp requirements.txt $(STAMP); \
	fi

train: setup
	$(BIN)/python train.py $(ARGS)

test: setup
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

test-all: setup
	$(BIN)/python -m pytest $(ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
