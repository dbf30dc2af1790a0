"""House rule: the fitter and the search import without Flax, Orbax, Grain or TensorFlow; the
arithmetic (arch, cost) without JAX at all."""

import subprocess
import sys

import pytest

HEAVY = ("flax", "orbax", "grain", "tensorflow")


@pytest.mark.parametrize("module,banned", [
    ("lawsearch", HEAVY + ("jax",)),
    ("lawsearch.arch", HEAVY + ("jax",)),
    ("lawsearch.cost", HEAVY + ("jax",)),
    ("lawsearch.search", HEAVY),
    ("lawsearch.cli", HEAVY + ("jax",)),
])
def test_light_imports(module, banned):
  code = (f"import sys, {module}\n"
          f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({banned!r})))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]", f"{module} imported {out.stdout.strip()}"
