"""PM2's recycling defaults, which leaklab matches: the supervisor recycles with them and
the recycling model predicts with them. Every layer may import this module (it imports
nothing of leaklab)."""

from __future__ import annotations

#: How often PM2's worker reads each process's memory (``PM2_WORKER_INTERVAL``).
PM2_CHECK_INTERVAL_S = 30.0
#: The signal a graceful stop sends, and how long it waits before SIGKILL.
PM2_KILL_SIGNAL = "SIGINT"
PM2_KILL_TIMEOUT_S = 1.6
#: Consecutive crash restarts before PM2 gives up.
PM2_MAX_RESTARTS = 16
#: ``restart``: stop, then start (PM2's fork mode); ``reload``: start the new process first (cluster
#: mode).
MODES = ("restart", "reload")
DEFAULT_MODE = "restart"
