# The two commands of the README: `make test` and `make demo`. Each sets up what it needs on a
# fresh Debian/Ubuntu machine (as root): the Debian packages of the test stack and a virtualenv
# with Canarist installed. Re-running is cheap: nothing is installed twice.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The demo's servers, and Chromium for the tests that load the HTML report headless.
SYSTEM_PACKAGES := redis-server prometheus prometheus-alertmanager nginx chromium
PYTEST_ARGS ?=

.PHONY: setup system venv lint test demo bench schema clean

setup: system venv

system:
	@scripts/install-system-packages.sh $(SYSTEM_PACKAGES)

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Canarist needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)." >&2; exit 2; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || scripts/install-system-packages.sh python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy analyzer canarist workers
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Until the end-to-end demo lands, `make demo` checks every shipped policy and says what it checked.
demo: setup
	$(BIN)/canarist policy validate policies/*.yaml

# Statistical power and false aborts against Argo- and Kayenta-style references (~7 min), then
# how many concurrent rollouts one worker sustains at p99 step lateness < 2 s (~13 min).
bench: setup
	$(BIN)/python -m benchmarks.power --json bench-power.json $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.scale --json bench-scale.json

schema: venv
	$(BIN)/canarist policy schema --output policies/schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
