"""notebooks/analysis.ipynb runs top to bottom, so it cannot rot.

The kernel is the interpreter running the tests (a kernelspec written to a temporary
JUPYTER_PATH), whatever kernels the machine has installed. The notebook records two
short runs of the http-agent scenario into a temporary folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "analysis.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.slow  # in the soak job, so that make test stays under 10 minutes
def test_notebook_executes(tmp_path, monkeypatch) -> None:
    kernel_dir = tmp_path / "jupyter" / "kernels" / "leaklab-test"
    kernel_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "leaklab test",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("LEAKLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LEAKLAB_NOTEBOOK_DURATION", "4s")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="leaklab-test",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()

    def text(cell) -> str:
        parts = []
        for out in cell.outputs:
            parts.append(out.get("text", ""))
            parts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
        return "\n".join(parts)

    code = [c for c in nb.cells if c.cell_type == "code"]
    pngs = sum(1 for c in code for out in c.outputs if "image/png" in out.get("data", {}))
    assert pngs >= 2  # the run's plot and the before/after plot
    assert any(text(c).startswith("LEAK on ") for c in code), "the leaky variant's verdict"
    assert any("restarts per hour" in text(c) for c in code)
    assert len(list((tmp_path / "runs").iterdir())) == 2
