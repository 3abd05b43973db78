# The two commands of the README: `make test` and `make demo`. Each sets up what it needs on a
# fresh Debian/Ubuntu machine (as root): the Debian packages of the test stack and a virtualenv
# with Canarist installed. Re-running is cheap: nothing is installed twice.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The demo's servers; the tests also load the HTML report in a headless Chromium.
DEMO_PACKAGES := redis-server prometheus prometheus-alertmanager nginx
SYSTEM_PACKAGES := $(DEMO_PACKAGES) chromium
PYTEST_ARGS ?=

.PHONY: setup system demo-system venv lint test demo bench schema clean

setup: system venv

system:
	@scripts/install-system-packages.sh $(SYSTEM_PACKAGES)

demo-system:
	@scripts/install-system-packages.sh $(DEMO_PACKAGES)

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

# A healthy and a bad release, end to end, on local processes behind NGINX (~3 min); DEMO_ARGS
# takes `--keep` to leave the stack running afterwards.
demo: demo-system venv
	$(BIN)/canarist policy validate policies/*.yaml
	$(BIN)/canarist demo $(DEMO_ARGS)

# Statistical power and false aborts against Argo- and Kayenta-style references and an oracle
# (~11 min), the CPU of one analysis pass (~1 min), how many concurrent rollouts one worker
# sustains at p99 step lateness < 2 s (~13 min), then how fast the service recovers from an
# abort, a dead worker and a dead router (~5 min).
bench: setup
	$(BIN)/python -m benchmarks.power --json bench-power.json $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.analysis_cost --json bench-analysis-cost.json
	$(BIN)/python -m benchmarks.scale --capacity --json bench-scale.json
	$(BIN)/python -m benchmarks.recovery --runs 5 --json bench-recovery.json

schema: venv
	$(BIN)/canarist policy schema --output policies/schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
