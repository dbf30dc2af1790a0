"""experiments/quickstart.ipynb runs headless (nbclient) and imports only the light modules."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_quickstart_notebook_runs_and_stays_light():
  nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extras")
  nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extras")
  pytest.importorskip("ipykernel", reason="ipykernel is in the test extras")
  nb = nbformat.read(os.path.join(ROOT, "experiments", "quickstart.ipynb"), as_version=4)
  nb.cells.append(nbformat.v4.new_code_cell(
      "import sys; print(sorted(m for m in ('flax', 'orbax', 'grain', 'matplotlib.pyplot') "
      "if m in sys.modules))"))
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": ROOT}})
  client.execute(env={**os.environ, "JAX_PLATFORMS": "cpu"})
  outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in nb.cells]
  assert "runs" in outputs[2] and "MSE" in outputs[3]
  assert outputs[-1].strip() == "[]"  # no heavy module, no pyplot
  figure = nb.cells[-2]["outputs"]
  assert any("image/png" in o.get("data", {}) for o in figure)  # the plot, inline
