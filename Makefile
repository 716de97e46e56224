# semvision: `make demo` and `make test` set everything up themselves (a .venv made with pip).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := semstereo semaglue clearscd ssp sgdepth_pkd
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint format clean fixtures dist dist-check $(PACKAGES:%=test-%) test-shared

setup: $(STAMP)

$(STAMP): shared/pyproject.toml $(PACKAGES:%=packages/%/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "torch>=2.1" "torchvision>=0.16"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e "shared[test,yaml,safetensors,export]" \
		$(patsubst %,-e packages/%,$(filter-out ssp,$(PACKAGES))) -e "packages/ssp[learned]" \
		"pytest>=7" "ruff>=0.5" "scikit-image>=0.21" "build>=1"
	touch $(STAMP)

demo: setup
	$(BIN)/python tools/demo_all.py

test: setup
	$(BIN)/python tools/run_tests.py

test-shared: setup
	$(BIN)/python -m pytest shared/tests -q

$(PACKAGES:%=test-%): test-%: setup
	$(BIN)/python -m pytest packages/$*/tests -q

bench: setup
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The wheel and sdist of the six distributions (semvision-common, semvision-<pkg>) into dist/
dist: setup
	$(BIN)/python tools/dist.py

# Each package's wheel installed alone (with semvision-common) into an empty venv: CLI --help and one real command
dist-check: dist
	$(BIN)/python tools/check_dists.py

# Parity fixtures (not in the repository): make fixtures FIXTURES_FROM=<folder or .tar.gz/.zip archive>
FIXTURES_FROM ?=
fixtures:
	$(PYTHON) tools/fixtures.py "$(FIXTURES_FROM)" .fixtures

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist .dist-check
