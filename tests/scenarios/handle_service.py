"""A service with its own request handler: every request gets JSON back, every tenth one fails."""

PARAMS = {"fail_every": 10}


def setup(fail_every):
    return {"n": 0, "fail_every": fail_every, "paths": set()}


def handle(state, request):
    state["n"] += 1
    state["paths"].add(request.path)
    if state["n"] % state["fail_every"] == 0:
        raise ValueError(f"request {state['n']} failed on purpose")
    return {"n": state["n"], "method": request.method}


def step(state):
    raise AssertionError("a scenario with handle() must not have step() called for its requests")


def teardown(state):
    assert state["paths"] == {"/"}, state["paths"]
