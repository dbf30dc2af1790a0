"""Float64 for fits, scoped: the global `jax_enable_x64` flag is never flipped at import time.

    with lawsearch.laws.float64():
      ...  # arrays created and functions traced here are float64

jit caches key on the flag, so a function traced inside the context is float64 and the same
function traced outside is float32; the search may reuse this helper for its own solves.
"""

from __future__ import annotations

import contextlib

import jax


def float64() -> contextlib.AbstractContextManager:
  """A context manager inside which JAX computes in float64 (jax.enable_x64 scoped)."""
  enable = getattr(jax, "enable_x64", None)
  if enable is None:  # older jax kept it under experimental
    from jax.experimental import enable_x64 as enable  # pylint: disable=g-import-not-at-top
  return enable(True)
