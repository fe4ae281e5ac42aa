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
# The site: `make docs` executes every notebook in its one mode (nlref.notebooks.NOTEBOOK_MODES);
# fresh each time (-E, outputs removed), so the build is the notebook test of `make test` and CI.
DOCS_HTML := docs/_build/html
SPHINX    := $(PY) -m sphinx -W --keep-going -q -b html
VERSION    = $(shell $(PY) -c "import nlref; print(nlref.__version__)")

.PHONY: demo test test-library test-fast lint notebooks bench docs docs-open docs-full clean help

help:
	@echo "make demo       set up .venv and denoise a sample image"
	@echo "make test       set up .venv, build the site (it runs the notebooks) and run the whole test suite"
	@echo "make test-fast  the suite without slow tests and notebooks"
	@echo "make lint       ruff check and ruff format --check (part of make test)"
	@echo "make notebooks  start Jupyter on notebooks/ with the project's kernel"
	@echo "make bench      run every benchmark in quick mode"
	@echo "make docs       build the site in docs/_build/html (notebooks executed, warnings are errors)"
	@echo "make docs-open  build the site and open it in a browser"
	@echo "make docs-full  the site with every notebook in full mode (cached), zipped for a release"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.stamp-demo: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PIP) install -e ".[test,bench,docs]"
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

# The docs build executes the notebooks (one kernel at a time, so it runs beside the library's
# tests on CI's 2 cores); then pytest checks the built pages instead of running the notebooks
# again (NLREF_DOCS_HTML) and opens the site in Chromium (marker browser) when it is installed.
SITE_TESTS := browser or notebooks

test: lint
	@$(MAKE) --no-print-directory -j 2 test-library docs
	NLREF_DOCS_HTML=$(DOCS_HTML) $(TEST_ENV) $(PY) -m pytest -q -n 2 -m "$(SITE_TESTS)" $(PYTEST_ARGS)

test-library: $(VENV)/.stamp-test
	$(TEST_ENV) $(PY) -m pytest -q -n 2 -m "not ($(SITE_TESTS))" $(PYTEST_ARGS)

test-fast: $(VENV)/.stamp-test
	$(TEST_ENV) $(PY) -m pytest -q -n 2 -m "not slow and not notebooks and not browser and not packaging" $(PYTEST_ARGS)

notebooks: $(VENV)/.stamp-notebooks
	$(VENV)/bin/jupyter lab notebooks/

bench: $(VENV)/.stamp-test
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

docs: $(VENV)/.stamp-test
	rm -rf $(DOCS_HTML)
	$(TEST_ENV) $(SPHINX) -E -d docs/_build/doctrees docs $(DOCS_HTML)
	@echo "site: $(DOCS_HTML)/index.html"

docs-open: docs
	$(PY) -m webbrowser -t "file://$(abspath $(DOCS_HTML))/index.html"

# Every notebook in full mode; myst-nb's cache (docs/_build/.jupyter_cache) keeps each result
# until the notebook's code changes, so a full run is computed once.
docs-full: $(VENV)/.stamp-test
	NLREF_DOCS_FULL=1 $(SPHINX) -E -d docs/_build/doctrees-full docs docs/_build/html-full
	$(PY) -c "import shutil; print(shutil.make_archive('docs/_build/nlref-$(VERSION)-site', 'zip', 'docs/_build/html-full'))"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info data/out docs/_build docs/api/generated docs/notebooks
