"""The project's loopback upstream (scenarios/_upstream.py) for the corpus cases that make HTTP
requests.

Not a case itself (files starting with ``_`` are not scenarios). The upstream runs in its own
process on 127.0.0.1, on an ephemeral port, so its memory never shows in the case's figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SCENARIOS = str(Path(__file__).resolve().parents[2] / "scenarios")
if _SCENARIOS not in sys.path:
    sys.path.append(_SCENARIOS)

from _upstream import Upstream  # noqa: E402

__all__ = ["Upstream"]
