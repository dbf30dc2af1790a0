"""`import lawsearch.laws` stays light: no flax/orbax/grain/tensorflow, no global x64 flip."""

import subprocess
import sys


def test_import_is_light_and_leaves_x64_off():
  code = (
      "import sys, lawsearch.laws, jax\n"
      "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
      "('flax', 'orbax', 'grain', 'tensorflow', 'jaxopt'))\n"
      "print(heavy, jax.config.jax_enable_x64)\n"
      "with lawsearch.laws.float64():\n"
      "  import jax.numpy as jnp; print(jnp.ones(1).dtype)\n"
      "print(jnp.ones(1).dtype)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split("\n")[:3] == ["[] False", "float64", "float32"]
