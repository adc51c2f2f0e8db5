"""Look-alike (plateau): parsing documents of varying size raises RSS to a high-water mark.

Look-alike (plateau): parsing documents of varying size makes RSS climb to the high-water mark
of the largest working set and stay there (freed memory is kept by the allocator for reuse).

Modelled on kurtmckee/feedparser issue #287, "Memory leak (v6.0.8 on Linux)": calling
``feedparser.parse()`` in a loop showed max RSS rising along a logarithmic curve and then
staying almost flat after 10-100 iterations; the analysis attributes it to the allocator
keeping and reusing freed memory, not to a leak. Each new record size is rarer as the run
goes on, so RSS rises in ever smaller increments to a ceiling.

Each step parses one feed-like document into a list of entry dicts and drops it; document
sizes are drawn from a heavy-tailed distribution (a few large feeds among many small ones,
the largest ~4 MB parsed), so the high-water mark is reached early and approached slowly.

Source: https://github.com/kurtmckee/feedparser/issues/287
Affected: feedparser 6.0.8 on Linux (reported); any allocator high-water mark.
"""

from __future__ import annotations

import random

EXPECTED = "NOT_LEAK"
SHAPE = "plateau"
NATURAL_STEPS = 15_000
SOURCE = "https://github.com/kurtmckee/feedparser/issues/287"
AFFECTED = "feedparser 6.0.8 on Linux"

_MAX_ENTRIES = 8_000


def _document(rng: random.Random) -> str:
    entries = min(_MAX_ENTRIES, int(rng.paretovariate(1.2) * 20))
    return "\n".join(
        f"<entry><id>{i}</id><title>Post {i}</title><summary>{'lorem ' * 8}</summary></entry>"
        for i in range(entries)
    )


def setup():
    return {"rng": random.Random(287)}


def step(state):
    text = _document(state["rng"])
    entries = []
    for chunk in text.split("</entry>"):
        if "<id>" not in chunk:
            continue
        entry_id = chunk.split("<id>", 1)[1].split("</id>", 1)[0]
        title = chunk.split("<title>", 1)[1].split("</title>", 1)[0]
        entries.append({"id": entry_id, "title": title, "summary": chunk[-60:]})
    return len(entries)
