"""Started by Python at interpreter start-up when this folder is on ``PYTHONPATH``.

``leaklab run -- python app.py`` (or uvicorn, gunicorn ...) puts this folder first on
the child's ``PYTHONPATH``: every Python process of the command then starts
leaklab's in-process probes (:mod:`leaklab.runner.inprocess`) without any change to
its code. Outside such a run (no ``LEAKLAB_INPROCESS`` in the environment) it does
nothing. A ``sitecustomize`` that this one hides is imported after it.
"""

import os
import sys


def _chain_next_sitecustomize() -> None:
    """Import the ``sitecustomize`` this module shadows, if the environment has one."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if os.path.abspath(entry or ".") == here:
            continue
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [entry])
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return


if os.environ.get("LEAKLAB_INPROCESS"):
    try:
        from leaklab.runner import inprocess
    except ImportError:
        extra = os.environ.get("LEAKLAB_SYS_PATH", "")
        if extra and os.environ.get("LEAKLAB_PYTHON") == "{}.{}".format(*sys.version_info[:2]):
            sys.path.extend(p for p in extra.split(os.pathsep) if p and p not in sys.path)
        try:
            from leaklab.runner import inprocess
        except ImportError as exc:
            sys.stderr.write(f"leaklab: in-process probes unavailable in {sys.executable}: {exc}\n")
            inprocess = None
    if inprocess is not None:
        inprocess.start_from_env()

try:
    _chain_next_sitecustomize()
except Exception as exc:  # the hidden sitecustomize failed: say so, as Python would
    sys.stderr.write(f"leaklab: the environment's sitecustomize failed: {exc}\n")
