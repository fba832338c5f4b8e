# Two commands for a newcomer: `make demo` and `make test`. Both create their venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
EXTRAS := dev,flask,fastapi,django,redis,yaml

# `make test` runs everything against the built wheel, installed (not editable) in a venv of its own, so a
# file missing from the wheel or an import that works only from src/ fails there; `.venv` stays editable
# for `make demo`, `make lint` and quick runs of single tests. The wheel is rebuilt when anything it is made
# of changes, the venv's dependencies when pyproject.toml does.
WHEEL_DIR := build/wheel
TEST_VENV := build/test-venv
TEST_BIN := $(TEST_VENV)/bin
TEST_DEPS := $(TEST_VENV)/.deps-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
WHEEL_SOURCES := pyproject.toml README.md $(shell find src -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | sort)
# Named after the list of files too, so deleting a module rebuilds the wheel as adding or editing one does.
WHEEL_STAMP := $(WHEEL_DIR)/.built-$(shell echo $(WHEEL_SOURCES) | cksum | cut -d' ' -f1)

define checks
	$(1)/ruff check src tests benchmarks examples
	$(1)/ruff format --check src tests benchmarks examples
	$(1)/mypy --strict src
	$(1)/lint-imports
endef

.PHONY: test demo lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(TEST_BIN)/python:
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_BIN)/python -m pip install --quiet --upgrade pip

$(WHEEL_STAMP): $(WHEEL_SOURCES) | $(TEST_BIN)/python
	rm -rf $(WHEEL_DIR)
	$(TEST_BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEEL_DIR) .
	touch $@

$(TEST_DEPS): | $(WHEEL_STAMP)
	$(TEST_BIN)/python -m pip install --quiet "$$(ls $(WHEEL_DIR)/*.whl)[$(EXTRAS)]"
	rm -f $(TEST_VENV)/.deps-*
	touch $@

$(TEST_VENV)/.installed: $(WHEEL_STAMP) $(TEST_DEPS)
	$(TEST_BIN)/python -m pip install --quiet --force-reinstall --no-deps $(WHEEL_DIR)/*.whl
	touch $@

# The whole suite, tests/install included (fresh venvs holding the wheel with no extra, and each extra alone).
test: $(TEST_VENV)/.installed
	$(call checks,$(TEST_BIN))
	CLAUDE_RBAC_WHEEL="$$(ls $(CURDIR)/$(WHEEL_DIR)/*.whl)" $(TEST_BIN)/python -m pytest

lint: $(STAMP)
	$(call checks,$(BIN))

demo: $(STAMP)
	$(BIN)/python -m examples.fastapi_app

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS),bench]'
	@command -v wrk >/dev/null || (command -v apt-get >/dev/null && apt-get install -y -qq wrk >/dev/null 2>&1) \
		|| echo "wrk is not installed: the over-the-wire tables will be skipped"
	$(BIN)/python -m benchmarks.run --write benchmarks/README.md

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
