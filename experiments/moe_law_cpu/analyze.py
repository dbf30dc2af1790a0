"""The mixture-of-experts law on this CPU's runs (train.sh): which sparsity factor fits, what it
says, and whether the optimum in d/sqrt(N) and r moves with sparsity.

    .venv/bin/python experiments/moe_law_cpu/analyze.py [--root experiments/results/moe_law_cpu]
        [--boot 200]

Reads every finished run under ROOT/fit (dense and MoE, seeds) and writes under ROOT:
  laws/<form>.json   each MoE form (laws.forms.MOE_FORMS) fitted by `laws.fit_runs` (seed means,
                     noise weights, L_opt joint per scale, no r filter: the sweep's r are all
                     inside the paper's range), with bootstrap intervals over shapes and seeds
  forms.csv          per form: shapes, coefficients, MSE against the noise ceiling, the lack-of-fit
                     F and p, the sparsity coefficients with their intervals
  optimum.csv        the multiplicative law fitted on the dense runs alone and on the runs of each
                     MoE setting trained at several (x, r): x* and r* with their intervals
  summary.md         both tables, the seed noise per scale, and which form the fit prefers
Which form: the lowest lack-of-fit F (equivalently the noise-weighted misfit per degree of
freedom); a validation at a held-out scale decides in the end (not yet trained here).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd

from lawsearch import laws, runs
from lawsearch.errors import UserError
from lawsearch.laws import forms
from lawsearch.laws.runs_table import RunsTable
from lawsearch.table import markdown_table

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ROOT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "experiments", "results",
                            "moe_law_cpu")


def setting(table: RunsTable) -> np.ndarray:
  """Each run's sparsity as text: "dense" or "<E>x<G>" (top-k = G in this sweep)."""
  return np.array(["dense" if e == 1 else f"{e:g}x{g:g}" for e, _, g in table.sparsity])


def fit_forms(table: RunsTable, n_boot: int) -> tuple[pd.DataFrame, dict]:
  """Every MoE form fitted on the table: one row per form, and the FitSummary of each."""
  rows, fitted = [], {}
  for form in forms.MOE_FORMS:
    try:
      summary = laws.fit_runs(table, form, l_opt="joint", r_range=None, n_boot=n_boot,
                              validate=False)
    except UserError as e:  # too few settings for this form, or no convergence
      rows.append({"form": form, "error": str(e)[:200]})
      continue
    fitted[form] = summary
    lof, info = summary.lack_of_fit, summary.law.fit_info
    row = {"form": form, "shapes": info.n_points, "mse": info.mse,
           "ceiling": lof.ceiling if lof else np.nan, "F": lof.f if lof else np.nan,
           "p": lof.p if lof else np.nan}
    coefficients = summary.coefficients.set_index("coefficient")
    for name in forms.FORMS[form].sparsity_names:
      row[name] = coefficients.loc[name, "estimate"]
      if "low" in coefficients:
        row[f"{name}_95"] = [coefficients.loc[name, "low"], coefficients.loc[name, "high"]]
    rows.append(row)
  return pd.DataFrame(rows), fitted


def optimum_by_setting(table: RunsTable, n_boot: int) -> pd.DataFrame:
  """The dense (multiplicative) law fitted on the runs of one sparsity setting at a time, for the
  settings trained at several shapes: x* and r* with their bootstrap intervals."""
  labels = setting(table)
  rows = []
  for name in pd.unique(labels):
    part = table.rows(labels == name)
    try:
      summary = laws.fit_runs(part, "multiplicative", l_opt="joint", r_range=None,
                              n_boot=n_boot, validate=False)
    except UserError as e:  # one shape per scale: nothing to locate an optimum with
      rows.append({"setting": name, "runs": len(part), "error": str(e)[:160]})
      continue
    row = {"setting": name, "runs": len(part), "shapes": summary.law.fit_info.n_points}
    if summary.optimum is None:
      row["error"] = summary.no_optimum[:160]
    else:
      row.update(x_star=summary.optimum[0], r_star=summary.optimum[1])
      if summary.optimum_interval is not None:
        bounds = summary.optimum_interval
        row.update(x_star_95=[bounds.loc["x_star", "low"], bounds.loc["x_star", "high"]],
                   r_star_95=[bounds.loc["r_star", "low"], bounds.loc["r_star", "high"]])
    rows.append(row)
  return pd.DataFrame(rows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=DEFAULT_ROOT)
  parser.add_argument("--boot", type=int, default=200)
  args = parser.parse_args()
  table = RunsTable.of(runs.read_table(os.path.join(args.root, "fit")))
  table_forms, fitted = fit_forms(table, args.boot)
  optimum = optimum_by_setting(table, args.boot)
  os.makedirs(os.path.join(args.root, "laws"), exist_ok=True)
  for form, summary in fitted.items():
    summary.law.to_json(os.path.join(args.root, "laws", f"{form}.json"))
  table_forms.to_csv(os.path.join(args.root, "forms.csv"), index=False)
  optimum.to_csv(os.path.join(args.root, "optimum.csv"), index=False)
  noise = laws.noise.seed_noise(table)
  counts = pd.Series(setting(table)).value_counts().to_dict()
  best = (table_forms.dropna(subset=["F"]).sort_values("F").iloc[0]["form"]
          if "F" in table_forms and table_forms["F"].notna().any() else None)
  lines = ["# The MoE law on this CPU's runs", "",
           "Command: `experiments/moe_law_cpu/train.sh`, then `.venv/bin/python "
           f"experiments/moe_law_cpu/analyze.py --boot {args.boot}`. {len(table)} runs: "
           + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".", "",
           "Seed noise (pooled per scale):", "", "```", noise.describe(), "```", "",
           "## Sparsity factors (L_opt joint per scale; 95% intervals over shapes and seeds)", "",
           markdown_table(table_forms.to_dict("records"), list(table_forms.columns)), "",
           f"Preferred by the lack-of-fit F: {best or 'none fitted'}.", "",
           "## Does the optimum move with sparsity? (dense law per setting)", "",
           markdown_table(optimum.to_dict("records"), list(optimum.columns)), ""]
  with open(os.path.join(args.root, "summary.md"), "w") as f:
    f.write("\n".join(lines))
  with open(os.path.join(args.root, "summary.json"), "w") as f:
    json.dump({"runs": len(table), "settings": counts, "preferred": best,
               "forms": table_forms.to_dict("records"), "optimum": optimum.to_dict("records")},
              f, indent=1, default=lambda v: v.item() if hasattr(v, "item") else str(v))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
