# The two commands (README): `make run` and `make test`. Both need only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint services-test clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Set up and run the app: SQLite + filesystem broker, demo clinic, web + worker + beat.
run: $(STAMP)
	DEBUG=true $(BIN)/python bin/run_dev.py

## Set up and run the whole test suite (SQLite; service-backed tests run where the service is).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=itb_tracker.settings_test
	$(BIN)/pytest -n 2 --dist loadgroup -m "not fuzz"
	$(BIN)/pytest -n 0 -m fuzz

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var/*.sqlite3* var/broker
