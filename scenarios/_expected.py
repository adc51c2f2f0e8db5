"""The documented growth of a leaky scenario variant: what one request leaves behind.

Used by the scenarios' ``EXPECTED`` tables and ``expected_per_step()``, which the
tests compare with what real runs measure (docs/scenarios.md lists the numbers).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

#: Size of an empty ``bytes`` object: what each kept body costs on top of its length.
BYTES_HEADER = sys.getsizeof(b"")


@dataclass(frozen=True)
class Retention:
    """Bytes and allocated blocks one request keeps alive once its transient state is gone.

    ``bytes`` excludes bodies; ``body_copies`` counts the body-sized ``bytes``
    objects kept, each ``body_size + BYTES_HEADER`` bytes. The fixed part was
    measured with tracemalloc and ``sys.getallocatedblocks()`` after warm-up on
    CPython 3.11 (aiohttp 3.14, requests 2.34 / urllib3 2.8, httpx 0.28); other
    versions move it by tens of percent.
    """

    bytes: int
    blocks: float
    body_copies: int = 0

    def bytes_for(self, body_size: int) -> float:
        return self.bytes + self.body_copies * (body_size + BYTES_HEADER)


NOTHING = Retention(bytes=0, blocks=0)
