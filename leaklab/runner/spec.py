"""What the parent tells a process it starts: the seam between parent and child.

A scenario child gets it as JSON on its command line (``python -m leaklab.runner.child
SPEC_JSON``); a command's Python processes get it in ``LEAKLAB_INPROCESS``
(:mod:`leaklab.runner.inprocess`). Both read it back with :meth:`ChildSpec.from_dict`
and then read attributes, not keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: A run of known length is sampled about this many times: a run of set duration by time (the
#: parent shortens the interval), a run of set steps also at step boundaries (the child) ...
SAMPLES_PER_RUN = 200
#: ... but not more often than this, so that a short run's steps pay for sampling what a long
#: run's pay (an asked ``--interval`` may be shorter) ...
MIN_INTERVAL_S = 0.05
#: ... unless that would leave fewer samples than this: a run of set duration under a second
#: is sampled more often, a run of set steps at least every 1/this of its steps.
MIN_SAMPLES_PER_RUN = 20


@dataclass
class ChildSpec:
    """One generation's instructions. Times are ``time.monotonic()`` values of the parent's
    clock (the child shares it): ``t0`` is the run's start, ``deadline`` a hard stop."""

    #: time.monotonic() at the start of the run: every ``t`` the child reports counts from it
    t0: float
    #: the folder probes write their files to
    artifacts: str
    #: seconds between time-driven samples
    interval: float = 0.5
    scenario_path: str | None = None
    variant: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: the child's own bounds (None for a service: the parent's load bounds the run)
    steps: int | None = None
    duration_s: float | None = None
    rate: float | None = None
    #: time.monotonic() at which to stop whatever the steps say (a recycled run's later generations)
    deadline: float | None = None
    #: {"steps": n} or {"seconds": s}; empty: no warm-up (a later generation)
    warmup: dict[str, Any] = field(default_factory=dict)
    max_errors: int = 0
    probes: list[str] = field(default_factory=list)
    probe_options: dict[str, Any] = field(default_factory=dict)
    #: the working directory and import path the scenario expects
    cwd: str | None = None
    sys_path: list[str] = field(default_factory=list)
    #: RLIMIT_AS for the child: a backstop far above the RSS cap
    address_space_limit: int | None = None
    #: service mode: serve HTTP until stopped (:mod:`leaklab.runner.service`)
    serve: bool = False
    #: what probes are told the run will do (a service's steps are the load's requests)
    plan: dict[str, Any] = field(default_factory=dict)
    #: seconds a stopping service may take to finish the requests it has
    drain_timeout_s: float | None = None
    #: run times (seconds) at which to force a collection and sample: just before the parent's looks
    collect_at: list[float] = field(default_factory=list)
    #: a command's in-process probes: the program's path, and the file the parent writes its step
    #: count to
    program: str | None = None
    steps_file: str | None = None
    #: file descriptors the process reports on and reads acknowledgements from (set at spawn)
    report_fd: int | None = None
    ack_fd: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChildSpec:
        """The spec from its JSON form; keys it does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in (
            "warmup",
            "params",
            "plan",
            "probe_options",
            "probes",
            "sys_path",
            "collect_at",
        ):
            if values.get(name) is None:
                values.pop(name, None)  # JSON null for a collection: its empty default
        return cls(**values)

    def replace(self, **changes: Any) -> ChildSpec:
        return dataclasses.replace(self, **changes)
