"""Replication v1 against v2, side by side: what recipe v2 and seeds changed in the law.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/cpu_replication_v2/compare.py

For each replication (v1: experiments/results/cpu_replication, the paper's L_opt; v1 again with
L_opt fitted jointly, so that the recipe's effect stands apart from the L_opt's; v2:
experiments/results/cpu_replication_v2, L_opt joint), from its runs.csv: the multiplicative law on
the fitting scales (1,000 bootstrap refits) with its residual SD (root MSE on the shape means)
beside the noise ceiling's root and the pooled seed SD per scale, the lack-of-fit test, the
optimum with its 95% interval, the intervals' hi/lo ratios and depths (`interval_depth`: how
much worse the law is at an interval's far end), the validation at the held-out
scale (MSE, Spearman), and the held-out check (v2 also on every r: its r 7-11 shapes lie beyond
the paper's filter; and v2 with the decaying form, whose shape effect shrinks with N): the law's
favourite trained shape, its measured rank and its gap to the best in nats and in seed SDs.
Then each v2 row against the issue's targets for v2 (TARGETS: met, missed, or no value yet).
Writes ROOT_V2/comparison.json and prints both as Markdown tables (experiments/RESULTS.md and
BUILD_NOTES.md quote them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from lawsearch import demo, laws

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "cpu_replication"))
import replication  # pylint: disable=wrong-import-position

V1 = "experiments/results/cpu_replication"
V2 = "experiments/results/cpu_replication_v2"
COMMAND = "JAX_PLATFORMS=cpu .venv/bin/python experiments/cpu_replication_v2/compare.py"


def summarise(root: str, l_opt: str, n_boot: int = 1000, r_range=laws.DEFAULT_R_RANGE,
              form: str = "multiplicative") -> dict:
  """One replication's law of `form`, noise, validation and held-out check (module doc); the law
  on the runs with r in `r_range` (None: every r)."""
  df, rec = replication.read_table(root), replication.recipe_of(root)
  law, summary, _ = replication.fit_law(df, form, n_boot, l_opt=l_opt, r_range=r_range, rec=rec)
  noise = summary["noise"]
  lof = noise.get("lack_of_fit")
  opt = summary["optimum"]
  out = {"root": root, "form": form, "l_opt": l_opt, "runs": noise["runs"],
         "shapes": noise["shapes"],
         "residual_sd": math.sqrt(summary["mse"]),
         "noise_ceiling_sd": math.sqrt(lof["ceiling"]) if lof else None,
         "lack_of_fit_p": lof["p"] if lof else None,
         "seed_sd_by_scale": {row["scale"]: row["pooled_sd"] for row in noise["by_scale"]},
         "optimum": opt}
  at_size = law.at(float(replication.fitting_runs(df, root)["n_params"].median()))
  for column in ("d_over_sqrt_n", "mlp_attn_ratio"):
    if f"{column}_95" in opt:
      out[f"{column}_95_ratio"] = opt[f"{column}_95"][1] / opt[f"{column}_95"][0]
      out[f"{column}_95_depth"] = interval_depth(at_size, opt, column)
  try:
    val = demo.cross_scale_validation(df, form, l_opt, r_range=r_range, rec=rec)
    last = val.iloc[-1]
    out["validation"] = {key: last[key] if key == "task" else float(last[key])
                         for key in ("task", "mse", "spearman", "spearman_ceiling", "spearman_p")}
  except ValueError as e:
    out["validation"] = {"error": str(e)}
  try:
    _, check = replication.heldout_check(df, law, rec)
    best = check["law_best_trained"]
    out["heldout"] = {"measured_rank": best["measured_rank"], "shapes": check["shapes"],
                      "gap_to_best": best["gap_to_best"], "gap_in_seed_sd": best["gap_in_seed_sd"],
                      "seed_sd": check["seed_sd"], "spearman": check["spearman"]}
  except ValueError as e:
    out["heldout"] = {"error": str(e)}
  return out


def interval_depth(law: laws.ConditionalLaw, optimum: dict, column: str) -> float:
  """How much worse (relative loss) the law is at the far end of the optimum's 95% interval in
  `column` (d_over_sqrt_n or mlp_attn_ratio), the other variable at its optimum (a law that
  reads N: taken at one size, `law.at`): a bowl shallower than a shape mean's seed error cannot
  pin its bottom."""
  x, r = optimum["d_over_sqrt_n"], optimum["mlp_attn_ratio"]
  ends = optimum[f"{column}_95"]
  points = [(end, r) if column == "d_over_sqrt_n" else (x, end) for end in ends]
  best = float(law.predict_xr(x, r, 1.0))
  return max(float(law.predict_xr(px, pr, 1.0)) / best - 1 for px, pr in points)


def _f(value, digits=3) -> str:
  return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else (
      f"{value:.{digits}g}")


def table(rows: dict[str, dict]) -> str:
  """The Markdown table of `compare`'s rows."""
  lines = ["| | runs (shapes) | residual SD | noise ceiling SD | seed SD 80k / 145k / 297k | "
           "lack of fit p | d/sqrt(N)* [95%] (hi/lo) | r* [95%] (hi/lo) | 600k MSE / Spearman (a "
           "right law's) | "
           "favourite's rank, gap (seed SDs) |", "|" + "---|" * 10]
  for name, r in rows.items():
    opt, val, held = r["optimum"], r["validation"], r["heldout"]
    sds = " / ".join(_f(r["seed_sd_by_scale"].get(s)) for s in ("80k", "145k", "297k"))
    x = (f"{_f(opt.get('d_over_sqrt_n'))} [{_f(opt['d_over_sqrt_n_95'][0])}, "
         f"{_f(opt['d_over_sqrt_n_95'][1])}] ({_f(r['d_over_sqrt_n_95_ratio'], 2)})"
         if "d_over_sqrt_n_95" in opt else "no interior minimum" if "error" in opt else "-")
    rr = (f"{_f(opt.get('mlp_attn_ratio'))} [{_f(opt['mlp_attn_ratio_95'][0])}, "
          f"{_f(opt['mlp_attn_ratio_95'][1])}] ({_f(r['mlp_attn_ratio_95_ratio'], 2)})"
          if "mlp_attn_ratio_95" in opt else "-")
    v = (f"{_f(val.get('mse'))} / {_f(val.get('spearman'), 2)} "
         f"({_f(val.get('spearman_ceiling'), 2)})" if "mse" in val else "-")
    h = (f"{held['measured_rank']} of {held['shapes']}, {_f(held['gap_to_best'])} nats "
         f"({_f(held['gap_in_seed_sd'], 2)})" if "measured_rank" in held else "-")
    lines.append(f"| {name} | {r['runs']} ({r['shapes']}) | {_f(r['residual_sd'])} | "
                 f"{_f(r['noise_ceiling_sd'])} | {sds} | {_f(r['lack_of_fit_p'], 2)} | {x} | "
                 f"{rr} | {v} | {h} |")
  return "\n".join(lines)


def _heldout_validation(row: dict, key: str) -> float | None:
  """The row's validation `key` where its last task predicts the held-out scale, else None."""
  val, heldout = row["validation"], replication.recipe_of(row["root"]).heldout_scale
  return val.get(key) if val.get("task", "").endswith(f"-> {heldout}") else None


# The targets for v2: (name, the row's value, the bound, whether it must stay below it)
TARGETS = (
    ("seed SD <= 0.01 nats at every fitting scale",
     lambda r: max(r["seed_sd_by_scale"].values()), 0.01, True),
    ("no lack of fit beyond the noise (p >= 0.05)", lambda r: r["lack_of_fit_p"], 0.05, False),
    ("600k validation MSE <= 0.002", lambda r: _heldout_validation(r, "mse"), 0.002, True),
    ("600k validation Spearman >= 0.85", lambda r: _heldout_validation(r, "spearman"), 0.85,
     False),
    ("d/sqrt(N)* 95% interval within 3x", lambda r: r.get("d_over_sqrt_n_95_ratio"), 3.0, True),
    ("r* 95% interval within 5x", lambda r: r.get("mlp_attn_ratio_95_ratio"), 5.0, True),
    ("the favourite within one seed SD of the best 600k shape",
     lambda r: r["heldout"].get("gap_in_seed_sd"), 1.0, True),
)


def targets(row: dict) -> list[dict]:
  """Each of TARGETS against one row of `compare`: its value and whether it is met (None where
  the row has no value: no optimum, no held-out shapes, noise unknown)."""
  out = []
  for name, value_of, bound, below in TARGETS:
    value = value_of(row)
    met = None if value is None else bool(value <= bound if below else value >= bound)
    out.append({"target": name, "value": value, "met": met})
  return out


def _noise_context(target: str, row: dict) -> str:
  """For the Spearman target: what a law exactly right would score at 600k's seed noise, and the
  chance it would score no higher (laws.validation.spearman_at_noise)."""
  ceiling = _heldout_validation(row, "spearman_ceiling") if "Spearman" in target else None
  if ceiling is None or math.isnan(ceiling):
    return ""
  return (f" (a right law: {_f(ceiling, 2)}, p "
          f"{_f(_heldout_validation(row, 'spearman_p'), 2)})")


def targets_table(rows: dict[str, dict]) -> str:
  """The Markdown table of every v2 row against TARGETS."""
  v2 = {name: r for name, r in rows.items() if name.startswith("v2")}
  if not v2:
    return ""
  lines = ["| target | " + " | ".join(v2) + " |", "|" + "---|" * (len(v2) + 1)]
  verdicts = {name: targets(row) for name, row in v2.items()}
  for i, (target, *_) in enumerate(TARGETS):
    cells = ["-" if verdicts[name][i]["met"] is None else
             f"{_f(verdicts[name][i]['value'])} "
             f"{'met' if verdicts[name][i]['met'] else 'missed'}" + _noise_context(target, row)
             for name, row in v2.items()]
    lines.append(f"| {target} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def compare(v1: str, v2: str, n_boot: int = 1000) -> dict[str, dict]:
  rows = {"v1 (L_opt lowest loss)": summarise(v1, "empirical", n_boot),
          "v1 (L_opt joint)": summarise(v1, "joint", n_boot)}
  if os.path.exists(os.path.join(v2, "runs.csv")):
    rows["v2 (L_opt joint)"] = summarise(v2, "joint", n_boot)
    # v2 trained shapes of r 7-11 as well, beyond the paper's filter, to pin r*
    rows["v2 (L_opt joint, every r)"] = summarise(v2, "joint", n_boot, r_range=None)
    # the form that takes the shape effect's shrinking with N (experiments/RESULTS.md, 11)
    rows["v2 decaying (L_opt joint)"] = summarise(v2, "joint", n_boot, form="decaying")
    rows["v2 decaying (L_opt joint, every r)"] = summarise(v2, "joint", n_boot, r_range=None,
                                                          form="decaying")
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--v1", default=V1)
  parser.add_argument("--v2", default=V2)
  parser.add_argument("--n-boot", type=int, default=1000)
  args = parser.parse_args()
  rows = compare(args.v1, args.v2, args.n_boot)
  os.makedirs(args.v2, exist_ok=True)
  with open(os.path.join(args.v2, "comparison.json"), "w") as f:
    json.dump({"command": COMMAND, "rows": rows,
               "targets": {name: targets(r) for name, r in rows.items() if name.startswith("v2")}},
              f, indent=1, default=float)
  print(table(rows))
  print(f"\n{targets_table(rows)}")


if __name__ == "__main__":
  main()
