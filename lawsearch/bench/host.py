"""The machine's own limits, measured: fp32 matmul rate and memory read bandwidth.

    hw = host.measure()   # a cost.Hardware for this process's cores, e.g. the CPU in a CPU run

For chips in `cost.HARDWARE` the datasheet is the reference; a CPU has no datasheet there, so its
roofline (`cost.roofline_throughput`, `search.RooflineEfficiency`) uses these measurements: the
median of `repeats` timed runs of an n x n x n jnp.dot in float32, and of a jnp.sum over a
`read_bytes` float32 array (larger than any cache, so it streams from DRAM).
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import jax.numpy as jnp

from lawsearch import cost


def _median_seconds(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
  """fp32 FLOP/s of an n^3 jnp.dot on the default device (median of `repeats`)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  return 2 * n ** 3 / _median_seconds(jax.jit(jnp.dot), a, a, repeats=repeats)


def read_bandwidth(read_bytes: int = 1 << 30, repeats: int = 5) -> float:
  """Bytes/s of a jnp.sum over a float32 array of `read_bytes` (median of `repeats`)."""
  x = jnp.ones((read_bytes // 4,), jnp.float32)
  return read_bytes / _median_seconds(jax.jit(jnp.sum), x, repeats=repeats)


def measure(name: str | None = None) -> cost.Hardware:
  """This process's device as a `cost.Hardware`: measured fp32 peak and read bandwidth, and the
  machine's physical memory (CPU) as its capacity."""
  cores = len(os.sched_getaffinity(0))
  memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return cost.Hardware(name or f"{jax.devices()[0].platform}-{cores}core (measured)",
                       matmul_peak(), read_bandwidth(), float(memory))
