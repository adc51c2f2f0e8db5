# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv if needed, installs leaklab, runs the main job
#   make test   creates .venv if needed, installs leaklab, runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run report test soak lint gate bench clean

$(STAMP): pyproject.toml
	@command -v dot >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) ; } \
		|| echo "note: graphviz (dot) is not installed; retention graphs will be text only"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The main job: reproduce the incident (the http-agent seed preset, time compressed 20-fold,
# recycled at 150 MB as PM2 did), then its fix under the same load, then the before/after
# report in reports/http-agent-fix/ (about 5 minutes).
run: report

report: $(STAMP)
	BIN=$(BIN) sh reports/http-agent-fix.sh

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Slow soak tests (marked slow, excluded from `make test`); "no tests" (exit 5) is not a failure.
soak: $(STAMP)
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

# The regression gate on the fixed scenarios ([tool.leaklab.gate] in pyproject.toml).
gate: $(STAMP)
	$(BIN)/leaklab gate --junit-xml runs/gate/junit.xml

lint: $(STAMP)
	$(BIN)/ruff check leaklab tests benchmarks scenarios

# Every benchmark, one after the other (about 40 minutes; each file also runs on its own).
BENCHMARKS := runner_overhead profiler_overhead analysis_accuracy analysis_scale report_scale plugin_comparison gate_stability cap_overshoot
bench: $(STAMP)
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
