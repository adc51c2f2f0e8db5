"""A buffer that fills to 2,000 records and is flushed (a sawtooth, bounded)."""

BUFFER: list[dict] = []


def step(state):
    BUFFER.append({"id": len(BUFFER), "payload": "x" * 200})
    if len(BUFFER) >= 2_000:
        BUFFER.clear()


def teardown(state):
    BUFFER.clear()
