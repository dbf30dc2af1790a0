"""MLA on the CPU replication's scale: the short MLA sweep against GQA, then GQA vs MLA picks.

    .venv/bin/python experiments/mla_cpu.py compare   # mla_80k/comparison.{csv,json}
    .venv/bin/python experiments/mla_cpu.py search    # mla_80k/search/: best GQA vs best MLA
    .venv/bin/python experiments/mla_cpu.py bench     # mla_80k/bench.json: both picks measured

The sweep itself (6 shapes x 2 seeds, about 16 minutes per seed on one core), and a second seed
of the six GQA twins (the committed GQA runs have one; this root keeps them apart from the fit):
    taskset -c 1 .venv/bin/lawsearch sweep --config=configs/sweep.py:recipe=cpu,scales=80k,\\
        attention=mla,kv_lora_rank=32,x=0.08+0.1+0.13+0.17,r=1.5+3,seeds=2 \\
        --root experiments/results/mla_80k
    taskset -c 1 .venv/bin/lawsearch sweep --config=configs/sweep.py:recipe=cpu,scales=80k,\\
        x=0.08+0.1+0.13+0.17,r=1.5+3 --override seed=1 --root experiments/results/mla_80k/gqa_seed1

compare: each MLA shape (its seeds averaged) beside (a) the GQA run of the same sweep target (the cpu recipe's sweep at
80k: same d_model, nearest r) and (b) the committed multiplicative law's prediction at the MLA
run's own (d/sqrt(N), r) with the scale's empirical L_opt (the lowest GQA loss at 80k, as the law
was fitted). The law's ratio measured / predicted is computed for the GQA runs of the scale too,
so the MLA factor is read against the law's own error there: mla_loss_factor = mean MLA ratio /
mean GQA ratio (1 = MLA costs nothing at equal (x, r)).
search: the replication's search at 600k (`demo.run_search`, this CPU's roofline), then
`attention_search.compare` over kv_lora_rank 32, 64, 128 inside the law's fitted r range, with
that factor as the mla_loss evaluator.
bench: the two picks' decode throughput in the replication's protocol (batches 1, 8, 32; 256 in /
64 out; float32), in alternating sittings, beside the roofline of this CPU.
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys

import numpy as np
import pandas as pd

from lawsearch import arch, attention_search, demo, runs
from lawsearch.laws import ConditionalLaw, float64
from lawsearch.rundir import RunDir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_replication"))
import replication as rep  # pylint: disable=wrong-import-position

ROOT = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
REPL = os.path.join(ROOT, "cpu_replication")
OUT = os.path.join(ROOT, "mla_80k")
KV_LORA_RANKS = (32, 64, 128)


def _law():
  return ConditionalLaw.from_json(os.path.join(REPL, "law_multiplicative.json"))


def _predict(law, x, r, l_opt):
  with float64():
    return np.asarray(law.predict_xr(np.asarray(x, np.float64), np.asarray(r, np.float64),
                                     l_opt), np.float64)


def _seed_means(table: pd.DataFrame) -> pd.DataFrame:
  """One row per MLA shape: the mean loss over its seeds, the held-out standard error of that
  mean, the number of seeds and their spread (max - min loss)."""
  table = table[table["attention"] == "mla"]
  shape = ["d_model", "n_heads", "ffn_dim", "kv_lora_rank"]
  rows = []
  for _, g in table.groupby(shape):
    first = g.iloc[0].to_dict()
    rows.append({**first, "loss": g["loss"].mean(),
                 "loss_se": math.sqrt((g["loss_se"] ** 2).sum()) / len(g), "seeds": len(g),
                 "seed_spread": g["loss"].max() - g["loss"].min(),
                 "tokens_per_s": g["tokens_per_s"].median()})
  return pd.DataFrame(rows).sort_values("d_over_sqrt_n").reset_index(drop=True)


def compare() -> dict:
  mla = _seed_means(runs.read_table(OUT))
  table = rep.read_table(REPL)
  gqa = table[(table["scale"] == "80k") & (table["part"] == "fit")].reset_index(drop=True)
  law, l_opt = _law(), float(gqa["loss"].min())
  gqa_ratio = gqa["loss"] / _predict(law, gqa["d_over_sqrt_n"], gqa["mlp_attn_ratio"], l_opt)
  # more seeds of the twins (the --override seed=1 sweep in the module docstring), as they finish
  gqa_seeds = pd.DataFrame([json.load(open(p)) for p in sorted(
      glob.glob(os.path.join(OUT, "gqa_seed1", "*", RunDir.RESULT)))])
  rows = []
  for _, m in mla.iterrows():
    same_d = gqa[gqa["d_model"] == m["d_model"]]
    twin = same_d.loc[(np.log(same_d["mlp_attn_ratio"] / m["mlp_attn_ratio"])).abs().idxmin()]
    predicted = float(_predict(law, m["d_over_sqrt_n"], m["mlp_attn_ratio"], l_opt))
    twin_spec = arch.from_fields(twin)
    twin_runs = [twin] + [r for _, r in gqa_seeds.iterrows() if arch.from_fields(r) == twin_spec]
    twin_loss = float(np.mean([r["loss"] for r in twin_runs]))
    twin_se = math.sqrt(sum(r["loss_se"] ** 2 for r in twin_runs)) / len(twin_runs)
    twin_law = float(_predict(law, twin["d_over_sqrt_n"], twin["mlp_attn_ratio"], l_opt))
    rows.append({
        "d_model": int(m["d_model"]), "mla_heads": int(m["n_heads"]),
        "kv_lora_rank": int(m["kv_lora_rank"]), "mla_ffn": int(m["ffn_dim"]),
        "mla_n": int(m["n_params"]), "mla_x": m["d_over_sqrt_n"], "mla_r": m["mlp_attn_ratio"],
        "mla_loss": m["loss"], "mla_loss_se": m["loss_se"], "mla_seeds": int(m["seeds"]),
        "mla_seed_spread": m["seed_spread"],
        "law_loss_at_mla": predicted, "mla_over_law": m["loss"] / predicted,
        "gqa_heads": f"{int(twin['n_heads'])}x{int(twin['n_kv_heads'])}",
        "gqa_ffn": int(twin["ffn_dim"]), "gqa_x": twin["d_over_sqrt_n"],
        "gqa_r": twin["mlp_attn_ratio"], "gqa_loss": twin_loss, "gqa_loss_se": twin_se,
        "gqa_seeds": len(twin_runs),
        "gqa_seed_spread": max(r["loss"] for r in twin_runs) - min(r["loss"] for r in twin_runs),
        "gqa_over_law": twin_loss / twin_law,
        "mla_minus_gqa": m["loss"] - twin_loss, "paired_se": math.hypot(m["loss_se"], twin_se),
        "mla_kv_elements_per_layer": int(m["kv_lora_rank"]) + 8,
        "gqa_kv_elements_per_layer": twin_spec.kv_cache_width,
        "mla_tokens_per_s_train": m["tokens_per_s"], "gqa_tokens_per_s_train": twin["tokens_per_s"],
    })
  out = pd.DataFrame(rows)
  out.to_csv(os.path.join(OUT, "comparison.csv"), index=False, float_format="%.6g")
  mla_mean, gqa_mean = float(out["mla_over_law"].mean()), float(gqa_ratio.mean())
  summary = {
      "law": "cpu_replication/law_multiplicative.json", "l_opt_80k": l_opt,
      "n_mla_shapes": len(out), "n_mla_runs": int(out["mla_seeds"].sum()), "n_gqa_runs": len(gqa),
      "mla_over_law_mean": mla_mean, "mla_over_law_sd": float(out["mla_over_law"].std()),
      "gqa_over_law_mean": gqa_mean, "gqa_over_law_sd": float(gqa_ratio.std()),
      "mla_loss_factor": mla_mean / gqa_mean,
      # standard error of the factor from the spreads of the two sets of ratios
      "mla_loss_factor_se": mla_mean / gqa_mean * math.hypot(
          out["mla_over_law"].std() / mla_mean / math.sqrt(len(out)),
          gqa_ratio.std() / gqa_mean / math.sqrt(len(gqa))),
      # like for like: the twins' seed means against the law at their own (x, r)
      "gqa_twins_over_law_mean": float(out["gqa_over_law"].mean()),
      "mla_loss_factor_vs_twins": mla_mean / float(out["gqa_over_law"].mean()),
      "mla_minus_gqa_twin_mean": float(out["mla_minus_gqa"].mean()),
      "mla_minus_gqa_twin_sd": float(out["mla_minus_gqa"].std()),
      "mla_better_than_twin": int((out["mla_minus_gqa"] < 0).sum()),
  }
  with open(os.path.join(OUT, "comparison.json"), "w") as f:
    json.dump(summary, f, indent=1)
  with pd.option_context("display.width", 200, "display.max_columns", 30):
    print(out[["d_model", "mla_heads", "mla_x", "mla_r", "mla_loss", "mla_seeds",
               "mla_seed_spread", "law_loss_at_mla",
               "gqa_heads", "gqa_x", "gqa_r", "gqa_loss", "gqa_seeds", "gqa_seed_spread",
               "mla_minus_gqa", "paired_se"]]
          .to_string(index=False, float_format=lambda v: f"{v:.4g}"))
  print(json.dumps(summary, indent=1))
  return summary


def _comparison():
  with open(os.path.join(OUT, "comparison.json")) as f:
    factor = json.load(f)["mla_loss_factor"]
  rec = rep.recipe_of(REPL)
  result = demo.run_search(_law(), rep.read_table(REPL), rep.efficiency(REPL), rec)
  law = result.law
  both = attention_search.compare(
      result, kv_lora_ranks=KV_LORA_RANKS, ffn_step=rec.ffn_step, tolerance=0.01,
      r_range=law.fit_info.r_range if law.fit_info else None,
      mla_loss=attention_search.mla_loss_factor(result, factor))
  return both, factor


def search() -> None:
  from lawsearch.report import attention

  both, factor = _comparison()
  print(f"mla_loss_factor {factor:.4f} (comparison.json)")
  print(attention.summary(both))
  print("wrote " + ", ".join(attention.save(both, os.path.join(OUT, "search"))))


def bench(trials: int = 3, sittings: int = 3) -> None:
  """Both picks in `sittings` alternating rounds (this 2-core machine is shared: its speed moves
  between minutes), every record kept in bench.json; the medians over the sittings printed."""
  from lawsearch.bench import throughput

  with open(os.path.join(OUT, "search", "attention.json")) as f:
    best = json.load(f)["best"]
  hw = rep.measured_hardware(REPL)
  records = []
  for sitting in range(sittings):
    for kind in sorted(best, reverse=bool(sitting % 2)):
      spec = arch.from_fields(best[kind]["spec"])
      for rec in throughput.measure({kind: spec}, hw, **rep.bench_settings(REPL, trials)).records:
        records.append({"sitting": sitting, **rec})
        print(f"sitting {sitting} {kind} batch {rec['batch']:3d}: "
              f"{rec['output_tokens_per_s']:9.0f} output tok/s "
              f"(roofline {rec['roofline_output_tokens_per_s']:9.0f})", flush=True)
      with open(os.path.join(OUT, "bench.json"), "w") as f:
        json.dump(records, f, indent=1)
  table = pd.DataFrame(records).groupby(["name", "batch"])[
      ["output_tokens_per_s", "roofline_output_tokens_per_s"]].median()
  print(f"medians over {sittings} sittings:\n{table.to_string(float_format=lambda v: f'{v:.0f}')}")


if __name__ == "__main__":
  stages = {"compare": compare, "search": search, "bench": bench}
  if len(sys.argv) != 2 or sys.argv[1] not in stages:
    sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(stages)}}}")
  stages[sys.argv[1]]()
