"""Seeds in one program: does training K seeds of one shape as one vmapped program beat training
them as separate runs on this CPU? And where do both stand against the CPU's matmul rate?

    JAX_PLATFORMS=cpu .venv/bin/python experiments/bench_seed_batch.py [--recipe cpu_v2]

For the CPU replication's 80k and 145k cross shapes in the recipe's batch (recipe cpu: 32 x 128;
cpu_v2: 8 x 128 at both; float32, synthetic tokens),
seed-tokens per second (K models x tokens per step / time) of:
  separate   two processes pinned to one core each, each training 2 of the 4 seeds in turn
             (how the sweeps run today: two pinned workers)
  vmap4      one process on both cores training the 4 seeds as one vmapped step
  vmap2x2    two pinned processes, each training 2 seeds as one vmapped step
with the same compiled step per mode repeated: medians of 5 sittings of 10 steps. The limit: the
rate of a 1024^3 float32 matmul on one and on two cores, against the steps' achieved FLOP rate
(6 N + attention per token, lawsearch.train.metrics). Stop other work first: the sweeps pin both
cores (kill -STOP their workers for the minute this takes, then kill -CONT).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SHAPES = {"80k": "params=8e4,layers=4,d_model=40,r=1,head_dim=16",
          "145k": "params=1.45e5,layers=4,d_model=48,r=1,head_dim=16"}
SEEDS, STEPS, SITTINGS = 4, 10, 5
EVAL = ["--config.train.eval_batches=1"]  # synthetic data has no whole held-out split


def worker(arg: str, members: int, sequential: int) -> None:
  """arg: a configs/train.py ARG (shape and recipe)."""
  """Times SITTINGS x STEPS steps of `sequential` programs of `members` vmapped seeds each and
  prints one JSON line: seconds per sitting and seed-tokens per sitting."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  from lawsearch import configlib  # pylint: disable=import-outside-toplevel
  from lawsearch.train import loop, optimizer as optimizer_lib, step as step_lib  # pylint: disable=C0415

  config = configlib.load(f"configs/train.py:{arg},data=synthetic", EVAL)
  program = loop.build_program(config)
  tx, schedule = optimizer_lib.from_config(config.optimizer, program.steps)
  step = step_lib.make_train_step(program.model, tx, schedule)
  if members == 1:
    fn = jax.jit(step, donate_argnums=0)
    states = [program.init() for _ in range(sequential)]
  else:  # the library's seed group: one program over `members` seeds
    fn = jax.jit(step_lib.group_step(step), donate_argnums=0)
    init = jax.jit(step_lib.make_group_init(program.model, tx, range(members)))
    states = [init() for _ in range(sequential)]
  t = config.train
  batch = {k: jnp.asarray(v) for k, v in next(loop.SyntheticLoader(
      config.data.vocab_size, t.seq_len, t.batch_size, 0)).items()}
  states = [fn(s, batch)[0] for s in states]  # compile and warm
  jax.block_until_ready(states)
  times = []
  for _ in range(SITTINGS):
    start = time.perf_counter()
    for _ in range(STEPS):
      states = [fn(s, batch)[0] for s in states]
    jax.block_until_ready(states)
    times.append(time.perf_counter() - start)
  print(json.dumps({"seconds": times, "seed_tokens": STEPS * members * sequential
                    * t.batch_size * t.seq_len}))


def matmul_rate(cores: str) -> float:
  """GFLOP/s of a 1024^3 float32 matmul on `cores` (median of 5)."""
  code = ("import time, jax, jax.numpy as jnp, numpy as np\n"
          "a = jnp.ones((1024, 1024), jnp.float32); f = jax.jit(lambda a: a @ a)\n"
          "f(a).block_until_ready(); ts = []\n"
          "for _ in range(5):\n  t = time.perf_counter()\n"
          "  for _ in range(10): f(a).block_until_ready()\n  ts.append(time.perf_counter() - t)\n"
          "print(2 * 1024**3 * 10 / np.median(ts) / 1e9)")
  out = subprocess.run(["taskset", "-c", cores, sys.executable, "-c", code], check=True,
                       capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  return float(out.stdout.split()[-1])


def run_mode(arg: str, cores_and_plans: list[tuple[str, int, int]]) -> float:
  """Seed-tokens/s of processes started together, one per (cores, members, sequential)."""
  procs = [subprocess.Popen(["taskset", "-c", cores, sys.executable, __file__, "--worker", arg,
                             str(members), str(sequential)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
           for cores, members, sequential in cores_and_plans]
  total = 0.0
  for p in procs:
    out, _ = p.communicate()
    if p.returncode:
      raise SystemExit(f"worker failed ({p.returncode})")
    doc = json.loads(out.strip().splitlines()[-1])
    total += doc["seed_tokens"] / sorted(doc["seconds"])[len(doc["seconds"]) // 2]
  return total


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--recipe", default="cpu", choices=("cpu", "cpu_v2"))
  parser.add_argument("--out", help="default: experiments/results/seed_batch_<recipe>.json")
  parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
    return
  from lawsearch import configlib  # pylint: disable=import-outside-toplevel
  from lawsearch.train import loop, metrics  # pylint: disable=import-outside-toplevel

  result = {"command": "JAX_PLATFORMS=cpu .venv/bin/python experiments/bench_seed_batch.py"
                       f" --recipe {args.recipe}",
            "seeds": SEEDS, "matmul_gflops_1core": matmul_rate("0"),
            "matmul_gflops_2cores": matmul_rate("0,1"), "shapes": {}}
  for scale, arg in SHAPES.items():
    arg = f"{arg},recipe={args.recipe}"
    config = configlib.load(f"configs/train.py:{arg},data=synthetic", EVAL)
    flops = metrics.train_flops_per_token(loop.arch_spec(config), config.train.seq_len)
    modes = {"separate": [("0", 1, 2), ("1", 1, 2)], "vmap4": [("0,1", 4, 1)],
             "vmap2x2": [("0", 2, 1), ("1", 2, 1)]}
    rates = {name: run_mode(arg, plan) for name, plan in modes.items()}
    result["shapes"][scale] = {
        "arch": arg, "batch_size": config.train.batch_size, "flops_per_token": flops,
        **{f"{k}_seed_tokens_per_s": v for k, v in rates.items()},
        **{f"{k}_gflops": v * flops / 1e9 for k, v in rates.items()},
        "vmap4_over_separate": rates["vmap4"] / rates["separate"],
        "vmap2x2_over_separate": rates["vmap2x2"] / rates["separate"]}
    print(scale, json.dumps(result["shapes"][scale], indent=1), flush=True)
  print(f"matmul limit: {result['matmul_gflops_1core']:.1f} GFLOP/s on 1 core, "
        f"{result['matmul_gflops_2cores']:.1f} on 2")
  with open(args.out or f"experiments/results/seed_batch_{args.recipe}.json", "w") as f:
    json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
