# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv if needed, installs leaklab, runs the main job
#   make test   creates .venv if needed, installs leaklab, runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test soak lint bench gate clean

$(STAMP): pyproject.toml
	@command -v dot >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) ; } \
		|| echo "note: graphviz (dot) is not installed; retention graphs will be text only"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The main job: reproduce the incident (seed preset, time compressed) and its fix, then report.
run: $(STAMP)
	$(BIN)/leaklab list
	$(BIN)/leaklab run tests/scenarios/retain_bytes.py --variant leaky --steps 20000 --rate 5000/s

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Slow soak tests (marked slow, excluded from `make test`); "no tests" (exit 5) is not a failure.
soak: $(STAMP)
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

lint: $(STAMP)
	$(BIN)/ruff check leaklab tests benchmarks scenarios

bench: $(STAMP)
	$(BIN)/python benchmarks/runner_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
