"""Who holds the growing objects: reference chains from a root to instances of growing types.

At the end of the run (and on demand: ``kill -USR1 <child pid>``) the probe counts
objects per type, takes the types that grew most since the warm-up (the most
specific first: the program's and libraries' classes before the standard
library's, builtins last), and looks for the shortest chain from a root to an
instance of each: from the user's own roots first (its modules' globals, its
classes' attributes, the scenario's state), then, failing that, from any module,
class or running frame back to one of the newest instances
(``objgraph.find_backref_chain``); see :mod:`leaklab.probes.referrers`. Each chain is
recorded as text (``http_agent._SESSIONS -> dict -> ClientSession``), as hops with
the attribute, key or index each one goes through, and as a Graphviz drawing
(``.dot``, and ``.png`` where ``dot`` is installed: :mod:`leaklab.chain_graph`).

Everything the search touched is dropped before the probe returns. The search
runs under a time budget; a type whose chain was not found within it is recorded
as such.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from typing import Any

from leaklab import chain_graph
from leaklab.kinds import EventKind
from leaklab.naming import Classifier, type_tier
from leaklab.probes import Probe, ProbeContext, referrers, support


class RetentionProbe(Probe):
    name = "retention"
    #: growing types searched per request
    TYPES = 5
    #: newest instances sampled per type
    INSTANCES = 3
    MAX_DEPTH = 10
    #: seconds of chain search per type, and per request (all types)
    BUDGET_S = 3.0
    TOTAL_BUDGET_S = 8.0
    #: growth since the warm-up below which a type is not worth a search
    MIN_GROWTH = 10

    def __init__(self) -> None:
        self.base: dict[str, int] | None = None
        self.base_steps = 0
        self.requested = False
        self.previous_handler: Any = None
        self.searches = 0

    def start(self, ctx: ProbeContext) -> None:
        on_demand = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "SIGUSR1"
        )
        # A scenario that handles SIGUSR1 itself keeps it.
        if on_demand and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            self.previous_handler = signal.signal(signal.SIGUSR1, self._on_signal)
        if ctx.warmup_done:
            self.warmup_end(ctx)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.requested = True

    def warmup_end(self, ctx: ProbeContext) -> None:
        if self.base is None:
            try:
                self.base = dict(support.count_types_at(ctx))
            except Exception as exc:
                support.record_failure(ctx, self.name, "baseline count", exc)
                self.base = {}
            self.base_steps = ctx.steps

    def tick(self, ctx: ProbeContext) -> None:
        if self.requested:
            self.requested = False
            self.search(ctx, reason="signal")

    def finish(self, ctx: ProbeContext) -> None:
        if self.previous_handler is not None:
            signal.signal(signal.SIGUSR1, self.previous_handler)
            self.previous_handler = None
        self.search(ctx, reason="end")

    def overhead(self) -> dict[str, float]:
        return {"searches": self.searches}

    # -- the search -------------------------------------------------------------

    def candidates(self, counts: dict[str, int], steps: int) -> list[tuple[str, int]]:
        """The types to search: the most specific first (see :func:`type_tier`), then most
        growth."""
        base = self.base or {}
        floor = max(self.MIN_GROWTH, 0.01 * steps)
        grown = [(name, n - base.get(name, 0)) for name, n in counts.items()]
        grown = [(name, g) for name, g in grown if g >= floor]
        grown.sort(key=lambda item: (type_tier(item[0]), -item[1]))
        return grown[: self.TYPES]

    def search(self, ctx: ProbeContext, reason: str) -> None:
        if self.base is None:
            return
        self.searches += 1
        try:
            counts = support.count_types_at(ctx)
        except Exception as exc:
            support.record_failure(ctx, self.name, "count", exc)
            return
        chosen = self.candidates(counts, ctx.steps - self.base_steps)
        del counts
        classifier = Classifier(ctx.plan.get("scenario_path"))
        deadline = time.monotonic() + self.TOTAL_BUDGET_S
        for index, (name, growth) in enumerate(chosen, start=1):
            budget = min(self.BUDGET_S, deadline - time.monotonic())
            try:
                result = self._search_type(ctx, name, classifier, budget)
            except Exception as exc:
                support.record_failure(ctx, self.name, f"chain for {name}", exc)
                continue
            result.update(object_type=name, growth=growth, reason=reason, steps=ctx.steps)
            if result.get("found"):
                self._draw(ctx, result, index, reason)
            ctx.emit(EventKind.RETENTION_CHAIN, **result)

    def _search_type(
        self, ctx: ProbeContext, name: str, classifier: Classifier, budget: float
    ) -> dict[str, Any]:
        """A chain to one of a few sampled instances: from the user's roots, else from any root."""
        began = time.monotonic()
        state = ctx.state
        instances = referrers.sample_instances(name, self.INSTANCES)
        ignore = (id(instances), id(sys._getframe()))
        described: dict[str, Any] | None = None
        how = None
        timed_out = False
        try:
            roots = referrers.user_roots(state, classifier)
            try:
                chain = referrers.forward_chain(
                    roots, instances, began + budget / 2, self.MAX_DEPTH
                )
            except referrers.OutOfTime:
                chain, timed_out = None, True
            roots.clear()
            if chain is not None:
                how = "forward"
            else:
                for i in range(len(instances)):
                    if time.monotonic() >= began + budget:
                        break
                    try:
                        chain = referrers.backward_chain(
                            instances[i], state, began + budget, self.MAX_DEPTH, ignore
                        )
                    except referrers.OutOfTime:
                        timed_out = True
                        break
                    if chain is not None:
                        how = "backward"
                        break
            if chain is not None:
                described = referrers.describe(chain, state, classifier)
                chain.clear()
        finally:
            sampled = len(instances)
            instances.clear()
            del instances, state
        result: dict[str, Any] = {
            "seconds": round(time.monotonic() - began, 3),
            "search": how,
            "instances": sampled,
            "timed_out": timed_out and described is None,
        }
        if described is None:
            result.update(
                found=False,
                text=None,
                hops=[],
                root=None,
                root_kind=None,
                depth=None,
                user_root=False,
            )
        else:
            result.update(found=True, **described)
        return result

    def _draw(self, ctx: ProbeContext, chain: dict[str, Any], index: int, reason: str) -> None:
        folder = ctx.artifacts / "retention"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            short = (
                re.sub(r"[^A-Za-z0-9_.-]+", "_", chain["object_type"].rsplit(".", 1)[-1])[:40]
                or "type"
            )
            dot_path = folder / f"{reason}-{index}-{short}.dot"
            png = chain_graph.render_png(chain, dot_path)
        except Exception as exc:
            support.record_failure(ctx, self.name, "drawing", exc)
            return
        chain["dot"] = f"artifacts/retention/{dot_path.name}"
        chain["png"] = f"artifacts/retention/{png.name}" if png else None
