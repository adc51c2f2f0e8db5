"""Raises at a chosen step or phase."""

PARAMS = {"at_step": 50, "phase": "step"}


def setup(params):
    if params["phase"] == "setup":
        raise RuntimeError("setup exploded on purpose")
    return {"n": 0, **params}


def step(state):
    state["n"] += 1
    if state["phase"] == "step" and state["n"] >= state["at_step"]:
        raise ValueError(f"step {state['n']} exploded on purpose")


def teardown(state):
    if state["phase"] == "teardown":
        raise RuntimeError("teardown exploded on purpose")
