"""Where the law's misfit lies: the multiplicative law fitted at each fitting scale alone.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/cpu_replication_v2/misfit.py [--root ROOT]

Across replication v2's fitting scales the law misses by more than the seed noise (fit.json's
lack-of-fit test). Fitted on one scale at a time (L_opt joint, so one free level; every r and the
paper's [0.5, 5]), each fit's MSE against that scale's noise ceiling says whether the law's form
holds within a scale; the coefficients per scale say what changes between them (a scale-free law
has the same coefficients at every scale), and the spread of the seed-mean losses over the
scale's shapes (max / min - 1) how much the shape matters there. The term these fits show
missing, a shape effect that shrinks with N, is the library's decaying form (`--form decaying`,
laws/forms.py): `run.py fit` fits and validates it beside the paper's forms, 600k included once
that scale has runs. Writes ROOT/misfit.json and prints Markdown tables (experiments/RESULTS.md
quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import pandas as pd

from lawsearch import laws
from lawsearch.laws.runs_table import RunsTable
from lawsearch.table import json_value, markdown_table

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "cpu_replication"))
import replication  # pylint: disable=wrong-import-position

ROOT = "experiments/results/cpu_replication_v2"
COEFFICIENTS = ("a0", "a1", "a2", "b1", "b2")  # the multiplicative law's, b0 = 1


def per_scale(fitting: pd.DataFrame, r_range=None) -> pd.DataFrame:
  """One row per scale of `fitting` (runs with a scale column) and one for all of them: shapes,
  MSE, noise ceiling, lack-of-fit F and p, optimum (NaN where none), coefficients, and the shape
  spread of a single scale."""
  rows = []
  for scale in [*pd.unique(fitting["scale"]), "all"]:
    part = fitting if scale == "all" else fitting[fitting["scale"] == scale]
    summary = laws.fit_runs(RunsTable.of(part), "multiplicative", l_opt="joint",
                            r_range=r_range, n_boot=0, validate=False)
    lof, law = summary.lack_of_fit, summary.law
    means = part.groupby(["d_model", "ffn_dim", "n_heads"])["loss"].mean()
    x_star, r_star = summary.optimum or (float("nan"), float("nan"))
    rows.append({"scale": scale, "shapes": law.fit_info.n_points, "mse": law.fit_info.mse,
                 "ceiling": lof.ceiling, "F": lof.f, "p": lof.p, "x_star": x_star,
                 "r_star": r_star, **{k: law.coefficients[k] for k in COEFFICIENTS},
                 "shape_spread": means.max() / means.min() - 1 if scale != "all" else None})
  return pd.DataFrame(rows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=ROOT)
  args = parser.parse_args()
  table = replication.read_table(args.root)
  fitting = replication.fitting_runs(table, args.root)
  out = {}
  for name, r_range in (("every r", None), ("r in [0.5, 5]", laws.DEFAULT_R_RANGE)):
    fits = per_scale(fitting, r_range)
    out[name] = fits.to_dict("records")
    print(f"## {name}\n\n{markdown_table(out[name], list(fits.columns))}\n")
  out["command"] = "JAX_PLATFORMS=cpu .venv/bin/python experiments/cpu_replication_v2/misfit.py"
  with open(os.path.join(args.root, "misfit.json"), "w") as f:
    json.dump(out, f, indent=1, default=json_value)


if __name__ == "__main__":
  main()
