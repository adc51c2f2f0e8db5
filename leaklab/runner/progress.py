"""The live progress bar of a run (tqdm on stderr, when it is a terminal)."""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

from leaklab import units

if TYPE_CHECKING:
    from leaklab.runner.parent import Prepared


class Progress:
    """Steps (or seconds) done, the rate, RSS and its growth, and the latest look's estimate."""

    MIN_REFRESH_S = 0.1

    def __init__(self, prepared: Prepared, enabled: bool | None) -> None:
        from tqdm import tqdm

        self.by_steps = prepared.steps is not None
        total = prepared.steps if self.by_steps else prepared.duration_s
        self.bar = tqdm(
            total=total,
            unit="step" if self.by_steps else "s",
            disable=(None if enabled is None else not enabled),
            desc=f"{prepared.scenario.name}"
            + (f" [{prepared.variant}]" if prepared.variant else ""),
            dynamic_ncols=True,
            leave=True,
            file=sys.stderr,
            bar_format=(
                "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                "[{elapsed}<{remaining}{postfix}]"
            ),
        )
        self.refreshed = -math.inf
        self.look = ""

    def update(
        self, t_steps: float, steps: int, rate: float, rss: int | None, growth: int | None
    ) -> None:
        now = time.monotonic()
        if now - self.refreshed < self.MIN_REFRESH_S:
            return  # samples can come hundreds of times a second; a terminal needs ten
        self.refreshed = now
        target = steps if self.by_steps else min(t_steps, self.bar.total or t_steps)
        self.bar.n = round(target, 1) if not self.by_steps else target
        text = (
            f"steps={steps} {rate:,.0f}/s rss={units.format_size(rss)} "
            f"growth={units.format_size(growth, signed=True)}"
        )
        if self.look:
            text += f" | {self.look}"
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.refresh()

    def note(self, look: str) -> None:
        """The latest look's estimate and how close it is to a decision."""
        self.look = look

    def close(self) -> None:
        self.bar.close()
