# Every target sets itself up: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit bench soak image-check lock clean

# The locked set (the whole closure, hence --no-deps) is installed hash-checked; the project
# (editable, so it cannot be hash-checked) then goes in with --no-deps: nothing unlocked slips in.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/callbridge demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy callbridge scripts/image_check.py

# The suite is paced by real-time audio, not CPU: four workers keep it within minutes on 2 cores.
unit: $(STAMP)
	$(BIN)/pytest -n 4

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/callbridge bench

soak: $(STAMP)
	$(BIN)/callbridge soak

# The Dockerfile's install steps replayed without Docker, then the result serves a real call.
image-check: $(STAMP)
	$(BIN)/python scripts/image_check.py

# Refresh the hashed pins from what .venv holds: requirements.lock (everything, for make) and
# requirements-runtime.lock (the image's runtime closure). After changing a range in
# pyproject.toml: `$(BIN)/pip install -e '.[dev]'` to resolve it, then `make lock`.
lock:
	$(BIN)/python scripts/lock.py

clean:
	rm -rf $(VENV) *.egg-info .mypy_cache .ruff_cache
