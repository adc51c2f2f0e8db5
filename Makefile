# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv if needed, installs leaklab, runs the main job
#   make test   creates .venv if needed, installs leaklab, runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# PM2, project-local (never global): `leaklab watch --pm2` and its tests drive it for real.
PM2_VERSION := 7.0.4
PM2    := $(VENV)/node/node_modules/.bin/pm2

.PHONY: run report test soak lint gate bench clean

$(STAMP): pyproject.toml
	@sh .ci/system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	! command -v npm >/dev/null 2>&1 || test -x $(PM2) \
		|| npm install --silent --no-audit --no-fund --prefix $(VENV)/node pm2@$(PM2_VERSION)
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
	$(BIN)/ruff format --check leaklab tests benchmarks scenarios

# Every benchmark, one after the other (a few hours on 2 cores; each file also runs on its own).
BENCHMARKS := runner_overhead profiler_overhead sampling_cost analysis_accuracy analysis_scale report_scale plugin_comparison plugin_real_suites gate_stability corpus_accuracy import_scale import_accuracy pm2_side_by_side bootstrap_overhead cap_overshoot
bench: $(STAMP)
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
