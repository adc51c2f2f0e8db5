"""``leaklab report``: charts and an incident-style report (Markdown, self-contained
HTML, PNG charts, ``summary.json``) for one run or a before/after pair.

::

    from leaklab.report import build, selection
    result = build.build(selection.pair("runs/...-seed", "runs/...-fixed"),
    "reports/http-agent-fix") result.html  # reports/http-agent-fix/report.html

Every number shown comes from :mod:`leaklab.analysis`; the report formats and draws.
"""
