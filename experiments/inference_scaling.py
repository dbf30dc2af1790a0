"""Inference cost as models grow: where it goes (the brief's regime claims) and what accuracy it buys.

    .venv/bin/python experiments/inference_scaling.py [--hardware h200] [--out DIR]

For the LLaMA-architecture family from SmolLM-135M to LLaMA-3.1-405B, and for the search's
Surefire at each of those sizes (the paper's 80M-297M law, each model's depth and head_dim, its
predicted loss as the target, the roofline of an 8-chip node at batch 64, 4096 in / 1024 out), writes
under experiments/results/inference_scaling/ (default):
  breakdown.csv    each model x scenario (context 4k/32k/128k, batch 1/64/256): bound, step time,
                   shares of decode FLOPs, bytes and roofline time per component
  claims.csv       claims 1-3 per scenario and group, with the numbers and crossovers
  ratio.csv        claim 4 (r = 2.5) against the paper's laws and the CPU replication's law
  picks.csv        the Surefire searched at each size
  llama_time.png, llama_flops.png, surefire_time.png   the shares against size
  points.csv, exponents.csv, exponents.png   the efficiency exponent (lawsearch.tradeoff): per
                   GQA and per attention kind, alpha (Performance ~ N^alpha, Performance =
                   1 / (L - E) with L_opt from the Epoch Chinchilla fit at 20 tokens/parameter),
                   eta (seconds per token ~ N^eta) and alpha / eta, from each search's most
                   efficient shape per GQA meeting its target (groups found at 5+ sizes)
"""

import argparse
import json
import os
import time

import pandas as pd

from lawsearch import cost, regimes, search, tradeoff
from lawsearch.laws import ChinchillaLaw, ConditionalLaw
from lawsearch.report import regimes as plots
from lawsearch.table import format_table

HERE = os.path.dirname(os.path.abspath(__file__))
REPLICATION = os.path.join(HERE, "results", "cpu_replication")
SEARCH_SERVE = {"batch": 64, "input_len": 4096, "output_len": 1024}


def searches(specs, hw) -> dict:
  """The search at each model's size, against that model's predicted loss."""
  law = ConditionalLaw.paper("80m-297m")
  measure = search.RooflineEfficiency(cost.node(hw, 8), **SEARCH_SERVE)
  results = {}
  for name, spec in specs.items():
    t = time.perf_counter()
    n = spec.non_embedding_params
    result = search.search(law, n, 20 * n, spec.n_layers, spec.head_dim, baseline=spec,
                           efficiency=measure, vocab_size=spec.vocab_size)
    results[name] = result
    gain = result.locate(result.surefire)["efficiency"] / result.locate(spec)["efficiency"] - 1
    print(f"surefire at {name}: {result.surefire} ({gain:+.0%} roofline tok/s; "
          f"{time.perf_counter() - t:.0f} s)", flush=True)
  return results


def replication_law():
  """The CPU replication's law and r* interval, if committed."""
  path = os.path.join(REPLICATION, "law_multiplicative.json")
  if not os.path.exists(path):
    return {}, {}
  with open(os.path.join(REPLICATION, "fit.json")) as f:
    bounds = json.load(f)["forms"]["multiplicative"]["optimum"].get("mlp_attn_ratio_95")
  name = "CPU replication (80k-297k)"
  return {name: ConditionalLaw.from_json(path)}, ({name: tuple(bounds)} if bounds else {})


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--hardware", default="h200")
  parser.add_argument("--out", default=os.path.join(HERE, "results", "inference_scaling"))
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  hw = cost.hardware(args.hardware)

  llama = regimes.family()
  results = searches(llama, hw)
  sure = {k: r.surefire for k, r in results.items()}
  picks = pd.DataFrame([{"size_of": k, **v.describe()} for k, v in sure.items()])
  picks.to_csv(os.path.join(args.out, "picks.csv"), index=False)
  tables = {"llama": regimes.breakdown_table(llama, hw, group="LLaMA family"),
            "surefire": regimes.breakdown_table({f"surefire@{k}": v for k, v in sure.items()},
                                                hw, group="Surefire at each size")}
  pd.concat(tables.values()).to_csv(os.path.join(args.out, "breakdown.csv"), index=False,
                                    float_format="%.6g")
  verdicts = pd.concat([regimes.claims(t).assign(group=t["group"].iloc[0])
                        for t in tables.values()])
  verdicts.to_csv(os.path.join(args.out, "claims.csv"), index=False)
  laws, intervals = replication_law()
  laws = {"paper 80M-297M": ConditionalLaw.paper("80m-297m"),
          "paper 1B-only": ConditionalLaw.paper("1b-only"), **laws}
  ratio = regimes.ratio_claim(laws, intervals)
  ratio.to_csv(os.path.join(args.out, "ratio.csv"), index=False)

  print(format_table(verdicts.to_dict("records"), ["group", "claim", "scenario", "holds",
                                                   "evidence", "crossover"]))
  print(format_table(ratio.to_dict("records"), list(ratio.columns)))
  points = tradeoff.family_points(list(results.values()), ChinchillaLaw.epoch())
  points.to_csv(os.path.join(args.out, "points.csv"), index=False, float_format="%.6g")
  # GQA values only step 3 visits (3, 5, 7, ...) exist at few sizes: groups need 5 of the 7.
  table = pd.concat([tradeoff.exponents(points, "group", min_sizes=5),
                     tradeoff.exponents(points, "kind", min_sizes=5).rename(
                         columns={"kind": "group"})])
  table.to_csv(os.path.join(args.out, "exponents.csv"), index=False, float_format="%.6g")
  print(format_table(table.to_dict("records"), list(table.columns)))
  print("wrote " + plots.exponents_plot(points, table, os.path.join(args.out, "exponents.png")))
  for key, t in tables.items():
    for what in ("time", "flops") if key == "llama" else ("time",):
      print("wrote " + plots.breakdown_plot(t, os.path.join(args.out, f"{key}_{what}.png"), what,
                                            f"{t['group'].iloc[0]}: decode step {what} by "
                                            f"component, {hw.name} roofline"))


if __name__ == "__main__":
  main()
