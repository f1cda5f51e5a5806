# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench install migrate clean

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

install: $(BIN)/activate

## run: set up, load the bundled sample on first use, then serve on http://127.0.0.1:8000
## with the scheduler beside it (Procfile.dev); Ctrl-C stops both
run: install
	DEBUG=$${DEBUG:-1} $(MANAGE) migrate --noinput
	DEBUG=$${DEBUG:-1} $(MANAGE) createcachetable
	DEBUG=$${DEBUG:-1} $(MANAGE) load_sample
	DEBUG=$${DEBUG:-1} $(MANAGE) setup_schedules
	DEBUG=$${DEBUG:-1} HOST=$(HOST) PATH="$(CURDIR)/$(BIN):$$PATH" \
	  $(BIN)/honcho -f Procfile.dev start --port $(PORT)

## test: set up and run every test (PostgreSQL when DATABASE_URL is set, else SQLite)
test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy signals subscriptions invest_alchemy

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var staticfiles
