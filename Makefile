# Two-command quick start: `make demo` and `make test` each create/reuse .venv,
# (re)install nlref editable only when pyproject.toml changed, then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Two pytest workers on CI's 2 cores, one BLAS thread each (oversubscribed BLAS
# threads slowed small matrix products by up to 250x in our measurements).
TEST_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k nl_means"`
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint notebooks bench clean help

help:
	@echo "make demo       set up .venv and denoise a sample image"
	@echo "make test       set up .venv and run the whole test suite (notebooks included)"
	@echo "make test-fast  the suite without slow tests and notebooks"
	@echo "make lint       ruff check and ruff format --check (part of make test)"
	@echo "make notebooks  start Jupyter on notebooks/ with the project's kernel"
	@echo "make bench      run every benchmark in quick mode"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.stamp-demo: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PIP) install -e ".[test,bench]"
	@touch $@

$(VENV)/.stamp-notebooks: pyproject.toml | $(PY)
	$(PIP) install -e ".[notebooks,test]"
	$(PY) -m ipykernel install --sys-prefix --name nlref --display-name "Python (nlref)"
	@touch $@

demo: $(VENV)/.stamp-demo
	$(PY) -m nlref.demo

lint: $(VENV)/.stamp-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(TEST_ENV) $(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

test-fast: $(VENV)/.stamp-test
	$(TEST_ENV) $(PY) -m pytest -q -n 2 -m "not slow and not notebooks" $(PYTEST_ARGS)

notebooks: $(VENV)/.stamp-notebooks
	$(VENV)/bin/jupyter lab notebooks/

bench: $(VENV)/.stamp-test
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info data/out
