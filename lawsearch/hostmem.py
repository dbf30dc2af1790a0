"""Keep host memory that XLA:CPU frees, so the next step reuses it instead of page-faulting.

XLA:CPU allocates each execution's temporaries as one malloc block (432 MiB for the tiny
model's train step at batch 8 x 256). glibc serves blocks above 32 MiB, and any block a worker
thread's arena cannot hold, with a fresh mmap that free() unmaps again: every step then faults
its whole working set back in (107,000 minor faults and a quarter of the CPU time in the kernel,
measured). `keep_freed_memory()` routes all threads through the main heap, never uses mmap for
a block, and never returns freed memory to the system; the faults drop to zero.

Call it before the first JAX computation creates XLA's thread pool (the CLI does, first thing).
It changes process-wide malloc settings and does nothing off glibc (macOS, musl).

Work whose temporaries change size from call to call (the downstream scorer's batches of many
shapes) takes `one_arena()` instead: kept blocks fragment there, so large blocks are mmapped and
returned when freed as usual; only the threads share the main heap, without which each of XLA's
worker threads grows its own 64 MiB arenas (a 135M model's nine-task eval: 2.6 GB resident).
"""

from __future__ import annotations

import ctypes
import functools

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc <malloc.h>


def _mallopt(settings: tuple[tuple[int, int], ...]) -> bool:
  """Applies glibc malloc settings (param, value); True where glibc accepted them all."""
  try:
    mallopt = ctypes.CDLL(None).mallopt  # the C library the process already runs on
  except (OSError, AttributeError):
    return False
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  return all(mallopt(param, value) == 1 for param, value in settings)


@functools.cache
def keep_freed_memory() -> bool:
  """Applies the settings above once; True where glibc accepted them."""
  return _mallopt(((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1)))


@functools.cache
def one_arena() -> bool:
  """Every thread allocates from the main heap, nothing else changed (see above); True where
  glibc accepted it."""
  return _mallopt(((_M_ARENA_MAX, 1),))
