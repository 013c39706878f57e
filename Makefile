# flowprobe — two commands to start: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo bench clean man

install: $(STAMP)

# Re-install only when the packaging metadata changes (editable install picks up code changes).
$(STAMP): pyproject.toml setup.py probe/cache/_flowtable.c probe/collect/_jsonl.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install
	$(BIN)/ruff check probe tests tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n 2 -q

# ruff, and the layer contract (pyproject.toml [tool.importlinter], README "Architecture")
lint: install
	$(BIN)/ruff check probe tests tools
	$(BIN)/lint-imports --no-cache

demo: install
	$(BIN)/flowprobe replay --format table pcaps/demo.pcap

# Offline table against softflowd, then the live row (needs root and network namespaces; without
# them it says why and the offline table still stands).
bench: install
	$(BIN)/python -m compileall -q probe  # byte-code cached even where PYTHONDONTWRITEBYTECODE is set
	$(BIN)/python -m tools.bench
	$(BIN)/python -m tools.bench_collect
	-$(BIN)/python -m tools.bench --live

# One man page per command, from the argparse definitions (committed; the wheel installs them
# under share/man/man1, so `man flowprobe-replay` works beside an installed flowprobe).
man: install
	$(BIN)/python -m tools.manpages man

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
