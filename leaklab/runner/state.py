"""Where a run is: one state, with its transitions in one place.

::

    RUNNING ──stop()──▶ STOPPING ──┐      the parent ends the run (load over, time up)
       │ └──spend()──▶ SPENT ──────┤      a recycled step run used its budget: no restart
       └────────abort()────────────┴─▶ ABORTED   cap, interrupt, timeout, failure: status fixed
    any ──end()──▶ ENDED                  finish(): the final status is known

Only RUNNING restarts generations, sends them load and lets the supervisor act. A run
that was never aborted gets its status at the end, from how its last generation ended.
"""

from __future__ import annotations

from enum import Enum

from leaklab.kinds import Status


class Phase(Enum):
    RUNNING = "running"
    STOPPING = "stopping"
    SPENT = "spent"
    ABORTED = "aborted"
    ENDED = "ended"


_NEXT: dict[Phase, tuple[Phase, ...]] = {
    Phase.RUNNING: (Phase.STOPPING, Phase.SPENT, Phase.ABORTED, Phase.ENDED),
    Phase.STOPPING: (Phase.ABORTED, Phase.ENDED),
    Phase.SPENT: (Phase.ABORTED, Phase.ENDED),
    Phase.ABORTED: (Phase.ENDED,),
    Phase.ENDED: (),
}


class RunState:
    """The run's phase, and once known its status (``meta.json`` ``status``) and message."""

    def __init__(self) -> None:
        self.phase = Phase.RUNNING
        self.status: Status | None = None
        self.message = ""

    def _go(self, phase: Phase) -> None:
        if phase not in _NEXT[self.phase]:
            raise RuntimeError(f"a run cannot go from {self.phase.value} to {phase.value}")
        self.phase = phase

    @property
    def running(self) -> bool:
        """Nothing has ended the run yet: generations may restart and receive load."""
        return self.phase is Phase.RUNNING

    @property
    def stopping(self) -> bool:
        return self.phase is Phase.STOPPING

    @property
    def aborted(self) -> bool:
        """The status is fixed (killed at the cap, interrupted, timed out, failed)."""
        return self.status is not None

    def stop(self) -> None:
        """The parent ends the run: its generations stop, and it completes."""
        self._go(Phase.STOPPING)

    def spend(self) -> None:
        """A recycled run's generation finished the run's steps or time: no restart."""
        self._go(Phase.SPENT)

    def abort(self, status: Status, message: str) -> bool:
        """Fix the status, unless something fixed it first (the first cause wins)."""
        if self.aborted:
            return False
        self._go(Phase.ABORTED)
        self.status, self.message = status, message
        return True

    def end(self, status: Status, message: str) -> None:
        """The final status, from how the run ended (``finish``)."""
        self._go(Phase.ENDED)
        self.status, self.message = status, message
