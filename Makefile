# Set-up and the two main jobs. `make demo` and `make test` each create .venv and install
# everything first (idempotent). On the project's CPU machines `pip install torch==2.13.0`
# resolves to the local CPU wheel; elsewhere set TORCH_SPEC (e.g. TORCH_SPEC=torch) or keep the
# torch already in your environment with `make TORCH_SPEC= ...`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.sciops-installed
DOCS_STAMP := $(VENV)/.sciops-docs-installed

.PHONY: setup demo lint test docs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)")
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/sciops demo

# the import layering (contracts in pyproject.toml) and ruff (pyflakes, import order, pyupgrade)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/python scripts/lint_layers.py

test: lint
	$(BIN)/python -m pytest

# The documentation site with every gallery example executed (docs/examples, tiny settings, one
# thread each); warnings are errors. Open docs/_build/html/index.html.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

bench: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python scripts/bench_darcy_solver.py
	$(BIN)/python scripts/bench_fno.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache docs/_build docs/auto_examples
