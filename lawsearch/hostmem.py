"""Keep host memory that XLA:CPU frees, so the next step reuses it instead of page-faulting.

XLA:CPU allocates each execution's temporaries as one malloc block (432 MiB for the tiny
model's train step at batch 8 x 256). glibc serves blocks above 32 MiB, and any block a worker
thread's arena cannot hold, with a fresh mmap that free() unmaps again: every step then faults
its whole working set back in (107,000 minor faults and a quarter of the CPU time in the kernel,
measured). `keep_freed_memory()` routes all threads through the main heap, never uses mmap for
a block, and never returns freed memory to the system; the faults drop to zero.

Call it before the first JAX computation creates XLA's thread pool (the CLI does, first thing).
It changes process-wide malloc settings and does nothing off glibc (macOS, musl).
"""

from __future__ import annotations

import ctypes
import functools

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc <malloc.h>


@functools.cache
def keep_freed_memory() -> bool:
  """Applies the settings above once; True where glibc accepted them."""
  try:
    mallopt = ctypes.CDLL(None).mallopt  # the C library the process already runs on
  except (OSError, AttributeError):
    return False
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
  return all(mallopt(param, value) == 1 for param, value in settings)
