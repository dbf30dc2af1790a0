"""The tiny mixture of experts against its dense twin (train.sh): losses over seeds, and decode
throughput measured by `lawsearch bench` against the roofline of this CPU.

    .venv/bin/python experiments/moe_cpu/analyze.py [--root experiments/results/moe_cpu] \
        [bench] [table]

bench   `lawsearch bench --workdir RUN --batch 1 8 32` (float32, 128 prompt and 32 generated
        tokens, random weights of the run's shape: a router near uniform, the roofline's
        assumption) of each shape's first seed, SITTINGS times: ROOT/bench/<shape>-<k>.json.
        Other jobs on the cores slow a sitting; the table takes the median of the sittings.
table   ROOT/summary.json and ROOT/summary.md: per shape its total and active parameters, the
        held-out loss of each seed and their mean, and per batch the measured output tokens/s,
        the roofline's (cost.roofline_throughput on the replication's measured CPU,
        experiments/results/cpu_replication/hardware.json, 4 bytes per element) and their ratio, with
        the experts a batch's decode step touches (arch.experts_touched, uniform routing).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from lawsearch import arch as arch_lib
from lawsearch import cost, demo, runs
from lawsearch.table import markdown_table

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
SHAPES = ("dense", "moe-e4", "moe-e8")  # train.sh's, each HERE/<shape>.arch.json
BATCHES = (1, 8, 32)
SCENARIO = dict(input_len=128, output_len=32)
SITTINGS = 3


def _shape_runs(root: str) -> dict[str, tuple[arch_lib.ArchSpec, list[tuple[str, dict]]]]:
  """shape -> (its ArchSpec, its finished runs under root/trained as (directory, result record),
  seed 0 first); each run's config and record read once."""
  finished = []  # (directory, its ArchSpec, its record)
  for result in sorted(glob.glob(os.path.join(root, "trained", "*", "result.json"))):
    run = os.path.dirname(result)
    with open(os.path.join(run, "config.json")) as f:
      finished.append((run, arch_lib.from_fields(json.load(f)["model"]["arch"]),
                       runs.read_result(run)))
  found = {}
  for name in SHAPES:
    spec = arch_lib.load_json(os.path.join(HERE, f"{name}.arch.json"))
    mine = sorted(((d, r) for d, s, r in finished if s == spec), key=lambda d_r: d_r[1]["seed"])
    if mine:
      found[name] = (spec, mine)
  return found


def bench(root: str) -> None:
  out = os.path.join(root, "bench")
  os.makedirs(out, exist_ok=True)
  for name, (_, finished) in _shape_runs(root).items():
    for k in range(1, SITTINGS + 1):
      path = os.path.join(out, f"{name}-{k}.json")
      if os.path.exists(path):
        continue
      subprocess.run([os.path.join(CHECKOUT, ".venv", "bin", "lawsearch"), "bench", "--workdir",
                      finished[0][0], "--batch", *map(str, BATCHES), "--input-len",
                      str(SCENARIO["input_len"]), "--output-len", str(SCENARIO["output_len"]),
                      "--out", path], check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
      print(f"{name} sitting {k}: {path} (load average {os.getloadavg()[0]:.1f})", flush=True)


def table(root: str) -> dict:
  hw = demo.read_hardware(os.path.join(CHECKOUT, "experiments", "results", "cpu_replication",
                                       "hardware.json"))
  shapes = []
  for name, (spec, finished) in _shape_runs(root).items():
    losses = [record["loss"] for _, record in finished]
    tokens = {record["tokens"] for _, record in finished}
    sittings = [json.loads(Path(p).read_text())
                for p in sorted(glob.glob(os.path.join(root, "bench", f"{name}-*.json")))]
    throughput = []
    for batch in BATCHES:
      measured = [r["output_tokens_per_s"] for s in sittings for r in s if r["batch"] == batch]
      roof = cost.roofline_throughput(spec, hw, batch, **SCENARIO, bytes_per_element=4)
      median = float(np.median(measured)) if measured else None
      throughput.append({
          "batch": batch, "measured_tok_s": median, "sittings": len(measured),
          "roofline_tok_s": roof.output_tokens_per_s,
          "fraction_of_roofline": median / roof.output_tokens_per_s if median else None,
          "experts_touched": (arch_lib.experts_touched(spec.n_experts, spec.top_k, batch)
                              if spec.is_moe else None)})
    shapes.append({"shape": name, "n_experts": spec.n_experts, "top_k": spec.top_k,
                   "expert_ffn_dim": spec.expert_ffn_dim,
                   "total_params": spec.non_embedding_params,
                   "active_params": spec.active_non_embedding_params,
                   "tokens": sorted(tokens), "seeds": len(losses), "losses": losses,
                   "loss_mean": float(np.mean(losses)),
                   "seed_spread": float(np.ptp(losses)) if len(losses) > 1 else None,
                   "throughput": throughput})
  summary = {"hardware": hw.name, "scenario": SCENARIO, "shapes": shapes,
             "command": "experiments/moe_cpu/train.sh (train, then analyze.py bench table)"}
  with open(os.path.join(root, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
    f.write("\n")
  dense = next((s["loss_mean"] for s in shapes if s["shape"] == "dense"), None)
  rows = [{"shape": s["shape"], "E": s["n_experts"] or "-", "top_k": s["top_k"] or "-",
           "N total": s["total_params"], "N active": s["active_params"], "seeds": s["seeds"],
           "loss (mean)": f"{s['loss_mean']:.4f}",
           "seed spread": f"{s['seed_spread']:.4f}" if s["seed_spread"] is not None else "-",
           "vs dense": f"{s['loss_mean'] - dense:+.4f}" if dense is not None else "-",
           **{f"tok/s b{t['batch']} (roofline)":
              (f"{t['measured_tok_s']:.0f} ({t['roofline_tok_s']:.0f})"
               if t["measured_tok_s"] else "-") for t in s["throughput"]}} for s in shapes]
  text = "\n".join([
      "# A tiny mixture of experts against its dense twin (this CPU)", "",
      f"Command: {summary['command']}. Held-out loss in nats; decode output tokens/s of a "
      f"{SCENARIO['input_len']}-token prompt and {SCENARIO['output_len']} generated tokens, "
      f"float32, median of the sittings; roofline on {hw.name}.", "",
      markdown_table(rows, list(rows[0])) if rows else "(no finished runs)", ""])
  with open(os.path.join(root, "summary.md"), "w") as f:
    f.write(text)
  print(text)
  return summary


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--root", default=os.path.join(CHECKOUT, "experiments", "results", "moe_cpu"))
  p.add_argument("stages", nargs="*", default=["bench", "table"], choices=["bench", "table"])
  args = p.parse_args(argv)
  for stage in args.stages:
    {"bench": bench, "table": table}[stage](args.root)
  return 0


if __name__ == "__main__":
  sys.exit(main())
