# nml: two commands for everything (README.md):
#   make test    set up .venv once, then run the test suite (browser tests excluded)
#   make book    set up .venv once, then build the Jupyter Book from stored results -> _build/html
# and, after `make book`:
#   make browser-test   drive headless chromium over _build/html (needs chromium + chromedriver)
# and to use the chapters live (the λ slider of chapter 06):
#   make lab            JupyterLab from .venv on notebooks/, widgets from the installed packages
#   make lab-test       that λ slider moved in a real JupyterLab in headless chromium
#
# Set-up is idempotent: the first run creates .venv with $(PYTHON) and installs the locked stack
# (requirements.txt) plus nml in editable mode; a stamp file makes every later run skip it until
# requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.nml-setup.stamp
PLOTLY_JS := book/_static/plotly.min.js
PYTEST_ARGS ?=
BOOK_ARGS ?=

# Notebooks name the kernel "python3". Started from the Makefile, Jupyter tools run the venv's
# python3 kernel (ipykernel's, inside .venv), even when a user-level "python3" kernel exists.
export PATH := $(abspath $(BIN)):$(PATH)
export JUPYTER_PREFER_ENV_PATH := 1

.PHONY: setup test book browser-test lab lab-test kernel lock clean help

help:
	@echo "make test          set up .venv (once) and run pytest (browser tests excluded)"
	@echo "make book          set up .venv (once) and build the book into _build/html"
	@echo "make browser-test  check the built book in headless chromium (after make book)"
	@echo "make lab           set up .venv (once) and open the chapters live in JupyterLab"
	@echo "make lab-test      drive chapter 06's live λ slider in JupyterLab in headless chromium"
	@echo "make kernel        register this venv as the Jupyter kernel 'nml' for your own Jupyter"
	@echo "make lock          rewrite requirements.txt from the current .venv"
	@echo "make clean         remove _build"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt
	# --no-deps: the lock above already holds every dependency at its tested version.
	$(PY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)

# pytest exits 5 when it collected no tests: a suite that runs nothing proves nothing, so fail.
test: $(STAMP)
	@$(PY) -m pytest --ignore=tests/browser $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5); failing" >&2; exit 1; fi; \
	exit $$rc

# plotly.js is copied from the pinned plotly package, so the book always loads the plotly.js
# version that the plotly Python package wrote its figures for.
$(PLOTLY_JS): $(STAMP)
	mkdir -p $(dir $@)
	cp "$$($(PY) -c 'import plotly, pathlib; print(pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js")')" $@

# The execution cache (_build/.jupyter_cache) re-runs a notebook only when its code changed. The
# chapters' outputs also depend on the stored results and on nml itself, so when anything under
# results/ or nml/ is newer than the cache (CACHE_STAMP, touched as each build starts), the
# cache is cleared first, and with it Sphinx's saved doctrees (without that, Sphinx re-reads
# only the notebooks whose source changed and the other pages keep their old outputs).
# -W --keep-going: any Sphinx / myst-nb warning (an output the builder cannot render, a broken
# reference, a notebook that fails) fails the build, after reporting all of them.
# A failed build stays failed: BOOK_STAMP exists only after a build that succeeded AND whose
# pages hold no cell error output (python -m nml.bookcheck). When it is missing, the last build
# failed or was interrupted, so Sphinx's saved state (_build/.doctrees) is dropped and every page
# is read again: a notebook that failed executes again (and fails again until it is fixed)
# instead of an incremental build skipping it and reporting success.
BOOK_STAMP := _build/.book-ok.stamp
CACHE_STAMP := _build/.book-inputs.stamp
book: $(STAMP) $(PLOTLY_JS)
	@if [ ! -f $(CACHE_STAMP) ] || [ -n "$$(find results nml -newer $(CACHE_STAMP) -type f ! -name '*.pyc' -print -quit 2>/dev/null)" ]; then \
	  if [ -d _build/.jupyter_cache ]; then echo "results/ or nml/ changed since the cached run: re-executing every chapter"; fi; \
	  rm -rf _build/.jupyter_cache _build/.doctrees; \
	fi
	@if [ ! -f $(BOOK_STAMP) ] && [ -d _build/.doctrees ]; then \
	  echo "the last make book failed or was interrupted: reading every page again"; \
	  rm -rf _build/.doctrees; \
	fi
	@rm -f $(BOOK_STAMP)
	@mkdir -p _build && touch $(CACHE_STAMP)
	$(BIN)/jupyter-book build . --builder html -W --keep-going $(BOOK_ARGS)
	$(PY) -m nml.bookcheck _build/html
	@touch $(BOOK_STAMP)
	@echo "make book: built _build/html; no page holds an error output"

browser-test: $(STAMP)
	@$(PY) -m pytest tests/browser --ignore=tests/browser/test_lab.py -v $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make browser-test: pytest collected no tests (exit 5); failing" >&2; exit 1; fi; \
	exit $$rc

# Chapter 06's live λ slider in a real JupyterLab (started with `make lab`) in headless chromium.
lab-test: $(STAMP)
	@$(PY) -m pytest tests/browser/test_lab.py -v -s $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make lab-test: pytest collected no tests (exit 5); failing" >&2; exit 1; fi; \
	exit $$rc

# JupyterLab on the repository, opening notebooks/. The widget manager (jupyterlab_widgets) and
# plotly's FigureWidget (anywidget) come as prebuilt extensions of the installed packages, so
# the widgets work offline; no news feed, update check or extension index is fetched (CI runs
# as root, which JupyterLab refuses without --allow-root). LAB_ARGS adds options
# (e.g. LAB_ARGS="--no-browser --port 8899").
LAB_ARGS ?=
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --ContentsManager.preferred_dir=notebooks \
	  --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	  --LabApp.extension_manager=readonly $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

kernel: $(STAMP)
	$(PY) -m ipykernel install --user --name nml --display-name "Python (nml)"

lock: $(STAMP)
	$(PY) scripts/lock_requirements.py

clean:
	rm -rf _build
