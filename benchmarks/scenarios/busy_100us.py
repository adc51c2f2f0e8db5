"""A CPU-bound step of about 100 microseconds that retains nothing (runner overhead benchmark)."""

PARAMS = {"work": 1500}


def setup(work):
    return {"work": work}


def step(state):
    total = 0
    for i in range(state["work"]):
        total += i * i
    return total
