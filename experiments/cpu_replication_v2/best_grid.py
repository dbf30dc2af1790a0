"""The best held-out grid shapes of a replication, as ArchSpec files for a third seed.

    .venv/bin/python experiments/cpu_replication_v2/best_grid.py --root ROOT [--count 5]

Reads ROOT/runs.csv (experiments/cpu_replication/run.py table), ranks the held-out scale's grid
shapes (part "heldout", role "sweep") by their seed-mean loss, writes the COUNT best as
ROOT/best_grid/<shape>.arch.json and prints their paths joined by "+" (a sweep's arch= argument).
"""

from __future__ import annotations

import argparse
import json
import os

import pandas as pd

from lawsearch import arch


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", required=True)
  parser.add_argument("--count", type=int, default=5)
  args = parser.parse_args()
  runs = pd.read_csv(os.path.join(args.root, "runs.csv"))
  grid = runs[(runs["part"] == "heldout") & (runs["role"] == "sweep")]
  fields = [f for f in arch.ArchSpec.__dataclass_fields__ if f in grid]
  means = grid.groupby(fields)["loss"].mean().sort_values().head(args.count)
  out = os.path.join(args.root, "best_grid")
  os.makedirs(out, exist_ok=True)
  paths = []
  for values in means.index:
    spec = arch.from_fields(dict(zip(fields, values)))
    path = os.path.join(out, f"d{spec.d_model}-f{spec.ffn_dim}-h{spec.n_heads}x{spec.n_kv_heads}"
                        ".arch.json")
    with open(path, "w") as f:
      json.dump(spec.fields(), f, indent=1)
    paths.append(path)
  print("+".join(paths))


if __name__ == "__main__":
  main()
