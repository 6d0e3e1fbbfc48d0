# Two entry points for a fresh machine: `make run` (embedded platform) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py seeddemo
	$(BIN)/python manage.py runembedded

test: $(VENV)/.installed-dev
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/http_handler.py --write
	$(BIN)/python bench/auth_ratelimit.py --write
	$(BIN)/python bench/ingest.py --write
	$(BIN)/python bench/fanout.py --write
	$(BIN)/python bench/microstructure.py --write
	$(BIN)/python bench/orders.py --write
	$(BIN)/python bench/orders.py --redis --write

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
