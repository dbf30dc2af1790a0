"""lawsearch.hostmem: with keep_freed_memory() a repeated XLA:CPU computation whose temporaries
exceed glibc's mmap threshold stops page-faulting them back in every call."""

import subprocess
import sys

import pytest

# A 64 MiB temporary ([4096, 4096] float32) per call, consumed by a second product (so XLA
# cannot fuse it away); prints the minor page faults of 3 calls.
_PROGRAM = """
import resource, sys
from lawsearch import hostmem
if sys.argv[1] == "keep":
  assert hostmem.keep_freed_memory()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: (jnp.tanh(x @ x.T) @ x).sum())
x = jnp.full((4096, 64), 0.01, jnp.float32)
for _ in range(2):
  f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
  f(x).block_until_ready()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
  out = subprocess.run([sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True,
                       env={"JAX_PLATFORMS": "cpu", "PATH": ""}, check=True)
  return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings only")
def test_keep_freed_memory_stops_page_faults():
  pages = 3 * 4096 * 4096 * 4 // 4096  # the temporaries of 3 calls, in 4 KiB pages
  default, kept = _faults("default"), _faults("keep")
  assert default > pages // 2, f"expected the default allocator to fault (got {default})"
  assert kept < pages // 20, f"faults with keep_freed_memory: {kept} of {pages} pages"
