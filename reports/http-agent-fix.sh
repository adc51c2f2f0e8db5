#!/bin/sh
# Regenerates reports/http-agent-fix/: the incident reproduced, then its fix.
#
#   sh reports/http-agent-fix.sh          (or: make report)
#
# The incident: memory grew 578 %/h from ~50 MB at 37 req/s, and PM2 restarted the
# process at 150 MB every 15-20 minutes. Both runs serve HTTP on 127.0.0.1 and take
# the seed preset's load (37 req/s) with time compressed 20-fold (each request makes
# 20 upstream requests; PM2's 30 s memory check becomes 1.5 s), recycled at 150 MB
# like PM2's max_memory_restart. Before: the `seed` preset of scenarios/http_agent.py.
# After: `fixed`, with the seed run's rate, starting memory and response size.
# Takes about five minutes.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUNS=runs/example-http-agent-fix
COMMON="--serve --duration 120s --recycle 150MB --check-interval 1.5s --param speed=20 --out $RUNS --no-progress"

rm -rf "$RUNS"
"$BIN/leaklab" run http-agent --variant seed $COMMON \
    || echo "note: the seed run ended with exit code $?; the report says how" >&2
# The same load on the fix: the rate and parameters the seed run resolved.
SAME_LOAD=$("$BIN/python" - "$RUNS" <<'PY'
import json, pathlib, sys
meta = json.loads(next(pathlib.Path(sys.argv[1]).glob("*-seed/meta.json")).read_text())
print(f"--rate {meta['config']['rate']}/s", *(f"--param {k}={meta['params'][k]}" for k in ("response_size", "baseline")))
PY
)
"$BIN/leaklab" run http-agent --variant fixed $SAME_LOAD $COMMON \
    || echo "note: the fixed run ended with exit code $?; the report says how" >&2
# The latest pair of one scenario: the seed run before, the fixed run after.
exec "$BIN/leaklab" report --runs "$RUNS" --out reports/http-agent-fix
