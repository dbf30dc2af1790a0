"""MoE train-step tokens/s on CPU: the grouped matmul as `jax.lax.ragged_dot` against by blocks.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/bench_moe_cpu.py [--blocks 16,32,64]

XLA:CPU lowers ragged_dot to a matmul of every token-slot against every expert (E / top_k times
the expert FLOPs); `lawsearch.model.moe.grouped_matmul(impl="blocked")` pads each expert's slots
to blocks and multiplies each block by its expert only. For the MoE law sweep's 80k shape (d 40,
SwiGLU 88, 4 heads, 4 layers; recipe cpu_v2's batch 8 x 128) dense and as mixtures E x G, a full
train step (forward, backward, AdamW) is timed for each implementation in alternation,
`--repeats` windows of `--steps` steps, medians compared. Writes
experiments/results/bench_moe_cpu.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time

import jax
import numpy as np

from lawsearch import arch
from lawsearch.model import ModelConfig
from lawsearch.model import moe as moe_lib
from lawsearch.train import optimizer
from lawsearch.train import step as step_lib

DENSE = arch.ArchSpec(n_layers=4, d_model=40, n_heads=4, n_kv_heads=4, head_dim=16, ffn_dim=88,
                      vocab_size=512)
MIXTURES = ((4, 2), (8, 2), (16, 2), (16, 4), (8, 1), (16, 1))
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bench_moe_cpu.json")


def step_fn(spec, impl: str, block: int):
  """A jitted train step of `spec` with the grouped matmul `impl` and its state."""
  original = moe_lib.grouped_matmul
  moe_lib.grouped_matmul = functools.partial(original, impl=impl, block=block)
  try:  # the matmul is chosen when the step is traced: trace it now
    model = step_lib.Model(ModelConfig(spec, max_seq_len=128, dtype="float32",
                                       attention_impl="grouped"))
    tx = optimizer.adamw(lambda _: 1e-3)
    state = jax.jit(step_lib.make_init(model, tx, seed=0))()
    train_step = jax.jit(step_lib.make_train_step(model, tx, lambda _: 1e-3,
                                                  moe_load_balance_weight=0.01))
    batch = {k: np.random.default_rng(0).integers(0, 512, (8, 128), dtype=np.int32)
             for k in ("inputs", "targets")}
    jax.block_until_ready(train_step(state, batch))
  finally:
    moe_lib.grouped_matmul = original
  return lambda: jax.block_until_ready(train_step(state, batch)[1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--blocks", default="16,32,64")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  impls = [("ragged", 0)] + [("blocked", int(b)) for b in args.blocks.split(",")]
  rows = []
  for experts, granularity in ((0, 0),) + MIXTURES:
    spec = arch.mixture(DENSE, experts, granularity) if experts else DENSE
    name = f"{experts}x{granularity}" if experts else "dense"
    fns = {(i, b): step_fn(spec, i, b) for i, b in (impls if experts else impls[:1])}
    times = {key: [] for key in fns}
    for _ in range(args.repeats):
      for key, fn in fns.items():
        start = time.perf_counter()
        for _ in range(args.steps):
          fn()
        times[key].append((time.perf_counter() - start) / args.steps)
    for (impl, block), t in times.items():
      rows.append({"setting": name, "impl": impl if experts else "dense", "block": block,
                   "tokens_per_s": 8 * 128 / statistics.median(t)})
      print(f"{name:>6} {rows[-1]['impl']:>8} block {block:>3}: "
            f"{rows[-1]['tokens_per_s']:9,.0f} tok/s", flush=True)
  dense = rows[0]["tokens_per_s"]
  for row in rows:
    row["vs_dense"] = row["tokens_per_s"] / dense
  with open(OUT, "w") as f:
    json.dump({"command": "JAX_PLATFORMS=cpu .venv/bin/python experiments/bench_moe_cpu.py "
                          f"--blocks {args.blocks} --steps {args.steps} --repeats {args.repeats}",
               "machine": f"{platform.machine()}, {os.cpu_count()} cores; the sweeps' workers "
                          "running beside it", "batch": [8, 128], "rows": rows}, f, indent=1)
  print(f"wrote {OUT}")


if __name__ == "__main__":
  main()
