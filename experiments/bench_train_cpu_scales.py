"""Train-step throughput of the CPU recipe's shapes against this machine's fp32 matmul peak.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/bench_train_cpu_scales.py            # 2 cores
    JAX_PLATFORMS=cpu taskset -c 0 .venv/bin/python experiments/bench_train_cpu_scales.py \
        --out experiments/results/cpu_replication/train_throughput_1core.json          # 1 core

For each scale of `recipe=cpu` (80k, 145k, 297k, 600k) three shapes of its sweep (the smallest
d/sqrt(N), the cross point x = 0.13 at r = 1, the largest d/sqrt(N)) and the LLaMA-3.2-shaped
baseline, the real train step of `lawsearch train` (grouped attention, AdamW, the recipe's batch
32 x 128) on synthetic tokens: tokens/s (median of --repeats windows of --steps steps), model
FLOP/s (`metrics.train_flops_per_token`: 6 (N + dV) + 12 L d_q T per token) and that as a
fraction of the fp32 matmul peak measured in the same run (a 2048^3 jnp.dot on the same cores,
median of 5). A second batch of 4x the rows shows how much of a step is fixed overhead: where
tokens/s grows with the batch, per-step costs and small matmuls, not FLOPs, set the pace.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax

from lawsearch import configlib, hostmem
from lawsearch.bench.host import matmul_peak
from lawsearch.recipe import CPU
from lawsearch.train import loop
from lawsearch.train import metrics as metrics_lib


def shapes():
  """(label, configs/train.py ARG) of the benchmarked shapes."""
  out = []
  for scale, n_params, n_layers in CPU.scales:
    sweep = CPU.sweep_shapes(scale)
    by_x = sorted(sweep, key=lambda t: t[2].d_over_sqrt_n)
    cross = min(sweep, key=lambda t: abs(t[0] - CPU.cross_x) + abs(t[1] - CPU.cross_r))
    picks = {"min x": by_x[0], "cross": cross, "max x": by_x[-1]}
    picks["baseline"] = (CPU.baseline_x, CPU.baseline_r, CPU.baseline(scale))
    for kind, (_, r, spec) in picks.items():
      out.append((f"{scale} {kind}", f"params={n_params:g},layers={n_layers},"
                  f"d_model={spec.d_model},r={r:g},gqa={spec.gqa},recipe=cpu,data=synthetic"))
  return out


def tokens_per_s(config, steps: int, repeats: int) -> float:
  program = loop.build_program(config)
  step = program.train_step.lower(program.abstract_state, program.abstract_batch(config)).compile()
  state, loader = program.init(), loop.make_loader(config, "train")
  batches = [loop._global(program, next(loader)) for _ in range(steps)]  # pylint: disable=protected-access
  for batch in batches[:2]:
    state, m = step(state, batch)
  jax.block_until_ready(m)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for batch in batches:
      state, m = step(state, batch)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  t = config.train
  return steps * t.batch_size * t.seq_len / statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default="experiments/results/cpu_replication/train_throughput.json")
  args = parser.parse_args()
  hostmem.keep_freed_memory()
  cores = len(os.sched_getaffinity(0))
  peak = matmul_peak()
  print(f"{cores} core(s); fp32 matmul peak (2048^3 jnp.dot): {peak / 1e9:.1f} GFLOP/s", flush=True)
  rows = []
  for label, arg in shapes():
    config = configlib.load(f"configs/train.py:{arg}", ["train.eval_batches=1"])
    spec = loop.arch_spec(config)
    flops = metrics_lib.train_flops_per_token(spec, config.train.seq_len)
    tps = tokens_per_s(config, args.steps, args.repeats)
    big = configlib.load(f"configs/train.py:{arg}",
                         ["train.eval_batches=1", f"train.batch_size={4 * config.train.batch_size}"])
    tps_big = tokens_per_s(big, max(2, args.steps // 4), args.repeats)
    rows.append({"shape": label, "d_model": spec.d_model, "n_heads": spec.n_heads,
                 "n_kv_heads": spec.n_kv_heads, "ffn_dim": spec.ffn_dim,
                 "n_params": spec.non_embedding_params,
                 "d_over_sqrt_n": round(spec.d_over_sqrt_n, 4),
                 "r": round(spec.mlp_attn_ratio, 3), "tokens_per_s": round(tps),
                 "model_gflop_per_s": round(tps * flops / 1e9, 2),
                 "fraction_of_peak": round(tps * flops / peak, 4),
                 "tokens_per_s_4x_batch": round(tps_big), "batch_gain": round(tps_big / tps, 3)})
    r = rows[-1]
    print(f"{label:14s} d={r['d_model']:4d} heads={r['n_heads']:3d} N={r['n_params']:8,} "
          f"{r['tokens_per_s']:8,} tok/s  {r['model_gflop_per_s']:6.1f} GFLOP/s = "
          f"{r['fraction_of_peak']:.1%} of peak; 4x batch: {r['batch_gain']:.2f}x tokens/s",
          flush=True)
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"command": "JAX_PLATFORMS=cpu " + ("taskset -c 0 " if cores == 1 else "")
               + f".venv/bin/python experiments/bench_train_cpu_scales.py --out {args.out}",
               "cores": cores, "matmul_peak_flops": peak, "jax": jax.__version__,
               "rows": rows}, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
