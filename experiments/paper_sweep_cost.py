"""What the paper's whole training sweep costs, on paper: the 80M/145M/297M grids (109 runs of
configs/sweep.py) plus its 1B and 3B models (LLaMA-3.2 baselines, Panda, Surefire), each on
100 N tokens at sequence 2048, as wall time and chip-hours on H100 and TPU v5p clusters at the
MFU `lawsearch train` measured (lawsearch.train.estimate).

    .venv/bin/python experiments/paper_sweep_cost.py   # -> experiments/results/paper_sweep_cost.json
"""

import dataclasses
import json
import os

from lawsearch import arch, configlib
from lawsearch.train import estimate, sweep

OUT = os.path.join(os.path.dirname(__file__), "results", "paper_sweep_cost.json")
LARGE = ("llama3.2-1b", "panda-1b", "surefire-1b", "llama3.2-3b", "panda-3b", "surefire-3b")
SEQ_LEN = 2048
TOKENS_PER_PARAM = 100  # the paper's recipe (PAPER.md)


def main() -> None:
  grid = estimate.runs_of(c for _, c in sweep.expand(
      configlib.load("configs/sweep.py:scales=80M+145M+297M")))
  large = [(s, TOKENS_PER_PARAM * s.non_embedding_params, SEQ_LEN)
           for s in map(arch.preset, LARGE)]
  parts = {"grid": estimate.estimate(grid), "1B and 3B": estimate.estimate(large),
           "all": estimate.estimate(grid + large)}
  doc = {"command": "experiments/paper_sweep_cost.py", "large_models": list(LARGE),
         **{k: dataclasses.asdict(v) for k, v in parts.items()}}
  with open(OUT, "w") as f:
    json.dump(doc, f, indent=1)
  for k, v in parts.items():
    print(f"{k}: {v.runs} runs, {v.tokens:.3g} tokens, {v.flops:.3g} FLOPs")
    for r in v.rows:
      print(f"  {r.chips:4d} x {r.hardware:9s} MFU {r.mfu:.1%}: {r.wall_s / 86400:7.2f} days, "
            f"{r.chip_hours:12,.0f} chip-hours")
  print(f"wrote {OUT}")


if __name__ == "__main__":
  main()
