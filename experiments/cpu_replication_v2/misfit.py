"""Where the law's misfit lies: the multiplicative law fitted at each fitting scale alone.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/cpu_replication_v2/misfit.py [--root ROOT]

Across replication v2's fitting scales the law misses by more than the seed noise (fit.json's
lack-of-fit test). Fitted on one scale at a time (L_opt joint, so one free level; every r and the
paper's [0.5, 5]), each fit's MSE against that scale's noise ceiling says whether the law's form
holds within a scale; the coefficients per scale say what changes between them (a scale-free law
has the same coefficients at every scale), and the spread of the seed-mean losses over the
scale's shapes (max / min - 1) how much the shape matters there. Then the candidate for the
missing term (`decaying_law`): the shape's effect times (N / N_REF)^-gamma, against the same law
with gamma = 0, each with its lack-of-fit test and, once the held-out scale (600k) has runs, its
prediction of their seed means there (the shape effect extrapolated, one level fitted). Writes
ROOT/misfit.json and prints Markdown tables (experiments/RESULTS.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pandas as pd

from lawsearch import laws
from lawsearch.laws.runs_table import RunsTable
from lawsearch.laws.validation import MIN_TEST
from lawsearch.table import json_value, markdown_table

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "cpu_replication"))
import replication  # pylint: disable=wrong-import-position

ROOT = "experiments/results/cpu_replication_v2"
COEFFICIENTS = ("a0", "a1", "a2", "b1", "b2")  # the multiplicative law's, b0 = 1
N_REF = 1.45e5  # the middle fitting scale


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


def _shape_basis(means: pd.DataFrame) -> np.ndarray:
  """[shapes, 4]: ln x, 1/x, ln r, 1/r of a seed-means table."""
  x, r = means["d_over_sqrt_n"].to_numpy(), means["mlp_attn_ratio"].to_numpy()
  return np.column_stack([np.log(x), 1 / x, np.log(r), 1 / r])


def decaying_law(fitting: pd.DataFrame, decay: bool, n_ref: float = N_REF,
                 heldout: pd.DataFrame | None = None) -> dict:
  """On the seed means of `fitting`: loss = level_scale * exp(f * (N / n_ref)^-gamma) with the
  shape effect f = a1 ln x + a2 / x + b1 ln r + b2 / r (gamma = 0 unless `decay`), fitted by
  weighted least squares (weights 1 / var_mean; jaxopt Levenberg-Marquardt in float64) from the
  linear fit at gamma = 0. Returns the coefficients, gamma, MSE and the lack-of-fit test; with
  `heldout` (the runs of one larger scale), the law's prediction of its seed means: the shape
  effect at the held-out N extrapolated, its one level fitted on them (as L_opt joint does), and
  the MSE and Spearman there (heldout_mse, heldout_spearman, heldout_shapes)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import jaxopt  # pylint: disable=import-outside-toplevel

  noise = laws.noise.seed_noise(RunsTable.of(fitting))
  means = noise.means
  scales = pd.get_dummies(means["scale"]).to_numpy(float)  # [shapes, scales]
  shape = _shape_basis(means)
  loss, sd = means["loss"].to_numpy(), np.sqrt(means["var_mean"].to_numpy())
  size = np.log(means["n_params"].to_numpy() / n_ref)
  start, *_ = np.linalg.lstsq(np.column_stack([scales, shape]) * (loss / sd)[:, None],
                              np.log(loss) * loss / sd, rcond=None)
  with laws.float64():
    def effect(theta, basis, log_size):  # the shape's effect on ln(loss), at each N
      gamma = theta[-1] if decay else 0.0
      return (basis @ theta[scales.shape[1]:-1]) * jnp.exp(-gamma * log_size)

    def predict(theta):
      return jnp.exp(scales @ theta[:scales.shape[1]] + effect(theta, shape, size))

    solver = jaxopt.LevenbergMarquardt(lambda t: (predict(t) - loss) / sd, maxiter=500,
                                       tol=1e-10, xtol=1e-12, gtol=1e-12)
    theta = solver.run(jnp.asarray(np.append(start, 0.3 if decay else 0.0))).params
    predicted = np.asarray(predict(theta))
  lof = laws.noise.lack_of_fit(predicted, noise, len(start) + decay)
  out = {"decay": decay, "gamma": float(theta[-1]) if decay else 0.0,
         **dict(zip(("a1", "a2", "b1", "b2"), map(float, theta[scales.shape[1]:-1]))),
         "shapes": lof.n_shapes, "mse": lof.mse, "ceiling": lof.ceiling, "F": lof.f, "p": lof.p}
  held = None if heldout is None else laws.noise.seed_noise(RunsTable.of(heldout)).means
  if held is not None and len(held) >= MIN_TEST:  # fewer: the fitted level absorbs them
    with laws.float64():
      f = np.asarray(effect(theta, _shape_basis(held),
                            np.log(held["n_params"].to_numpy() / n_ref)))
    measured = held["loss"].to_numpy()
    level = np.exp(np.mean(np.log(measured) - f))  # the scale's one level, least squares in ln
    guess = level * np.exp(f)
    out.update(heldout_shapes=len(held), heldout_mse=float(np.mean((guess - measured) ** 2)),
               heldout_spearman=laws.spearman(guess, measured))
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=ROOT)
  args = parser.parse_args()
  table = replication.read_table(args.root)
  fitting = replication.fitting_runs(table)
  out = {}
  for name, r_range in (("every r", None), ("r in [0.5, 5]", laws.DEFAULT_R_RANGE)):
    fits = per_scale(fitting, r_range)
    out[name] = fits.to_dict("records")
    print(f"## {name}\n\n{markdown_table(out[name], list(fits.columns))}\n")
  heldout = table[table["scale"] == replication.CPU.heldout_scale]
  decaying = pd.DataFrame([decaying_law(fitting, decay, heldout=heldout)
                           for decay in (False, True)])
  out["decaying shape effect"] = decaying.to_dict("records")
  table = markdown_table(out["decaying shape effect"], list(decaying.columns))
  print(f"## decaying shape effect\n\n{table}\n")
  out["command"] = "JAX_PLATFORMS=cpu .venv/bin/python experiments/cpu_replication_v2/misfit.py"
  with open(os.path.join(args.root, "misfit.json"), "w") as f:
    json.dump(out, f, indent=1, default=json_value)


if __name__ == "__main__":
  main()
