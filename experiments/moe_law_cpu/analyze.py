"""The mixture-of-experts law on this CPU's runs (train.sh): which sparsity factor fits, what it
says, whether the optimum in d/sqrt(N) and r moves with sparsity, the search's dense and MoE picks
at the held-out scale, and how the law predicts that scale.

    .venv/bin/python experiments/moe_law_cpu/analyze.py [--root experiments/results/moe_law_cpu]
        [--dense experiments/results/cpu_replication_v2/fit] [--boot 200]
        [fit] [search] [validate] [picks]

The fitting runs are every finished run under ROOT/fit and, at its scales (FIT_SCALES), the dense
runs of the same recipe under --dense (replication v2's fitting sweep: every dense shape with 3
seeds), each run once (its directory name is its identity).

fit       the fitting runs (dense and MoE, seeds), into ROOT:
            laws/<form>.json  each MoE form (laws.forms.MOE_FORMS) fitted by `laws.fit_runs`
                              (seed means, noise weights, L_opt joint per scale, no r filter: the
                              sweep's r all lie in the paper's range), bootstrap over shapes, seeds
            forms.csv         per form: shapes, MSE against the noise ceiling, the lack-of-fit F
                              and p, the sparsity coefficients with their 95% intervals
                              (<name>_low, <name>_high)
            against_dense.csv per scale, shape and setting: seed-mean loss, seeds, difference
                              from the dense run of the same shape
            optimum.csv       per setting trained at three or more shapes: how its gain over the
                              dense shape moves with ln x and ln r, and so its optimum against
                              the dense law's (optimum_by_setting)
            summary.md/.json  both tables, the seed noise, the form the lack of fit prefers
                              (lowest F); a held-out scale decides in the end (validate)
search    the preferred law's `lawsearch search --mlp dense,moe` at the held-out scale HELDOUT
          (its baseline's predicted loss as the target; this CPU's roofline at demo.SERVE, d_model
          within the fitting runs' d/sqrt(N)): ROOT/search/ (surefire.arch.json, best_moe...)
validate  the runs under ROOT/heldout, seeds averaged per shape: each MoE form refitted on the
          fitting scales and asked for the held-out scale (MSE, Spearman on the shape means:
          laws.cross_scale_validation), beside the dense law on the dense runs alone ->
          ROOT/validation.csv; and each mixture's measured gain over its dense shape there
          against each committed form's -> ROOT/heldout_gains.csv
picks     the search's two picks trained at HELDOUT (ROOT/heldout): measured loss (seed mean)
          against the law's prediction (relative to L_opt, absolute at the scale's lowest measured
          loss, the paper's L_opt), and decode output tokens/s measured by `lawsearch bench`'s
          protocol (random weights of the pick's shape, BENCH_BATCHES, demo.SERVE's lengths,
          float32) against this CPU's roofline -> ROOT/picks.csv
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd

from lawsearch import arch as arch_lib
from lawsearch import demo, laws, moe_search, runs, search
from lawsearch.errors import UserError
from lawsearch.laws import forms, noise
from lawsearch.laws.runs_table import RunsTable
from lawsearch.recipe import CPU_V2
from lawsearch.report import moe as moe_report, search_report
from lawsearch.table import json_value, markdown_table

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_ROOT = os.path.join(CHECKOUT, "experiments", "results", "moe_law_cpu")
HARDWARE = os.path.join(CHECKOUT, "experiments", "results", "cpu_replication", "hardware.json")
DEFAULT_DENSE = os.path.join(CHECKOUT, "experiments", "results", "cpu_replication_v2", "fit")
FIT_SCALES = ("80k", "145k")  # active N
HELDOUT = "320k"  # the recipe's scale above the fitting ones
BENCH_BATCHES = (1, 8, 32)


def fitting_runs(root: str, dense_root: str) -> pd.DataFrame:
  """The fitting runs (module doc): ROOT/fit's, and dense_root's dense runs at FIT_SCALES (none
  when dense_root is empty)."""
  frames = [runs.read_table(os.path.join(root, "fit"))]
  if dense_root and not os.path.isdir(dense_root):
    raise UserError(f"--dense {dense_root}: no such directory; give the dense sweep's run root, "
                    "or --dense '' to fit on ROOT/fit alone")
  if dense_root:
    dense = runs.read_table(dense_root)
    n = dense["n_active"] if "n_active" in dense else dense["n_params"]
    at_scales = np.array([CPU_V2.scale_of(v) in FIT_SCALES for v in n])
    experts = dense["n_experts"].fillna(1).to_numpy() if "n_experts" in dense else 1
    frames.append(dense[at_scales & (experts <= 1)])
  table = pd.concat(frames, ignore_index=True)
  return table[~table["run_dir"].map(os.path.basename).duplicated()].reset_index(drop=True)


def setting(table: RunsTable) -> np.ndarray:
  """Each run's sparsity as text: "dense" or "<E>x<G>" (top-k = G in this sweep)."""
  return np.array(["dense" if e == 1 else f"{e:g}x{g:g}" for e, _, g in table.sparsity])


def against_dense(table: RunsTable) -> pd.DataFrame:
  """Per scale, dense shape and setting: the seed-mean loss, its seeds and its difference from the
  dense run of the same shape (NaN before that has finished), best first within a shape."""
  frame = table.frame.assign(scale=table.scale, setting=setting(table))
  keys = ["scale", "d_model", "ffn_dim", "n_heads"]
  means = frame.groupby(keys + ["setting"], as_index=False).agg(  # rows: runs, or seed means
      loss=("loss", "mean"), seeds=("seeds", "sum") if "seeds" in frame else ("loss", "size"))
  dense = means[means["setting"] == "dense"].set_index(keys)["loss"]
  means["vs_dense"] = means["loss"] - [dense.get(tuple(row), np.nan)
                                       for row in means[keys].itertuples(index=False)]
  return means.sort_values(keys + ["loss"]).reset_index(drop=True)


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
      if "low" in coefficients:  # the 95% bootstrap interval
        row[f"{name}_low"] = coefficients.loc[name, "low"]
        row[f"{name}_high"] = coefficients.loc[name, "high"]
    rows.append(row)
  return pd.DataFrame(rows), fitted


def optimum_by_setting(table: RunsTable, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
  """Does the optimum move with sparsity? For each setting trained at three or more shapes: its
  log gain per shape, ln(loss / dense loss of the same shape) on seed means, fitted by weighted
  least squares as c_scale + b_x ln x + b_r ln r (weights from the pooled seed variance); the
  setting's optimum is the dense multiplicative law's (fitted on the dense runs, L_opt joint)
  times exp(b_x ln x + b_r ln r), located on a grid over the fitting runs' x and r, with a 95%
  interval from `draws` draws of (b_x, b_r) (the dense law's own uncertainty left out). A setting
  whose gain does not depend on x or r (b_x = b_r = 0) has the dense optimum."""
  noise = laws.noise.seed_noise(table)
  means = noise.means.assign(setting=setting(RunsTable.of(noise.means)))
  dense_law = laws.fit_runs(table.rows(setting(table) == "dense"), "multiplicative",
                            l_opt="joint", r_range=None, n_boot=0, validate=False).law
  x_grid = np.geomspace(table.x.min(), table.x.max(), 121)
  r_grid = np.geomspace(table.r.min(), table.r.max(), 121)
  lx, lr = np.meshgrid(np.log(x_grid), np.log(r_grid), indexing="ij")
  with laws.float64():
    log_dense = np.log(np.asarray(dense_law.predict_xr(np.exp(lx), np.exp(lr), 1.0)))
  rows = [{"setting": "dense", **_grid_optimum(log_dense, x_grid, r_grid)}]
  keys = ["scale", "d_model", "ffn_dim", "n_heads"]
  dense = means[means["setting"] == "dense"].set_index(keys)
  rng = np.random.default_rng(seed)
  for name, part in means[means["setting"] != "dense"].groupby("setting"):
    part = part.join(dense[["loss", "var_mean"]].add_suffix("_dense"), on=keys).dropna(
        subset=["loss_dense"])
    slopes = _gain_slopes(part)
    if slopes is None:
      continue
    b, b_cov = slopes
    drawn = rng.multivariate_normal(b, b_cov, size=draws)
    moved = [_grid_optimum(log_dense + bx * lx + br * lr, x_grid, r_grid) for bx, br in drawn]
    row = {"setting": name, "shapes": len(part), "b_x": b[0], "b_x_se": np.sqrt(b_cov[0, 0]),
           "b_r": b[1], "b_r_se": np.sqrt(b_cov[1, 1]),
           **_grid_optimum(log_dense + b[0] * lx + b[1] * lr, x_grid, r_grid)}
    for key in ("x_star", "r_star"):
      values = [m[key] for m in moved]
      row[f"{key}_95"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
    rows.append(row)
  return pd.DataFrame(rows)


def _gain_slopes(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
  """(b_x, b_r) and their covariance [2, 2] of ln(loss / loss_dense) = c_scale + b_x ln x +
  b_r ln r, weighted least squares over `part`'s shapes (seed means with var_mean and
  var_mean_dense); None with no more shapes than coefficients."""
  scales = pd.get_dummies(part["scale"]).to_numpy(float)
  design = np.column_stack([scales, np.log(part["d_over_sqrt_n"]),
                            np.log(part["mlp_attn_ratio"])])
  if len(part) <= design.shape[1]:
    return None
  gain = np.log(part["loss"] / part["loss_dense"]).to_numpy()
  sd = np.sqrt((part["var_mean"] / part["loss"] ** 2
                + part["var_mean_dense"] / part["loss_dense"] ** 2).to_numpy())
  weighted = design / sd[:, None]
  cov = np.linalg.inv(weighted.T @ weighted)
  beta = cov @ weighted.T @ (gain / sd)
  return beta[-2:], cov[-2:, -2:]


def _grid_optimum(log_loss: np.ndarray, x_grid: np.ndarray, r_grid: np.ndarray) -> dict:
  """x* and r* of the lowest point of log_loss [x, r] on the grid (at an edge: no interior
  minimum within the runs' range, flagged)."""
  i, j = np.unravel_index(np.argmin(log_loss), log_loss.shape)
  return {"x_star": float(x_grid[i]), "r_star": float(r_grid[j]),
          "at_edge": bool(i in (0, len(x_grid) - 1) or j in (0, len(r_grid) - 1))}


def fit(root: str, dense_root: str, n_boot: int) -> str | None:
  """The fit step (module doc); returns the preferred form (None when none could be fitted)."""
  table = RunsTable.of(fitting_runs(root, dense_root))
  table_forms, fitted = fit_forms(table, n_boot)
  optimum = optimum_by_setting(table)
  os.makedirs(os.path.join(root, "laws"), exist_ok=True)
  for form, summary in fitted.items():
    summary.law.to_json(os.path.join(root, "laws", f"{form}.json"))
  table_forms.to_csv(os.path.join(root, "forms.csv"), index=False)
  optimum.to_csv(os.path.join(root, "optimum.csv"), index=False)
  noise = laws.noise.seed_noise(table)
  counts = pd.Series(setting(table)).value_counts().to_dict()
  measured = against_dense(table)
  measured.to_csv(os.path.join(root, "against_dense.csv"), index=False)
  best = (table_forms.dropna(subset=["F"]).sort_values("F").iloc[0]["form"]
          if "F" in table_forms and table_forms["F"].notna().any() else None)
  lines = ["# The MoE law on this CPU's runs", "",
           "Command: `experiments/moe_law_cpu/train.sh`, then `.venv/bin/python "
           f"experiments/moe_law_cpu/analyze.py --boot {n_boot} fit`. {len(table)} runs (with "
           "replication v2's dense runs at the same scales): "
           + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".", "",
           "Seed noise (pooled per scale):", "", "```", noise.describe(), "```", "",
           "## Each setting against its dense shape (seed means, nats)", "",
           markdown_table(measured.to_dict("records"), list(measured.columns)), "",
           "## Sparsity factors (L_opt joint per scale; 95% intervals over shapes and seeds)", "",
           markdown_table(table_forms.to_dict("records"), list(table_forms.columns)), "",
           f"Preferred by the lack-of-fit F: {best or 'none fitted'}.", "",
           "## Does the optimum move with sparsity? (log gain against ln x and ln r)", "",
           markdown_table(optimum.to_dict("records"), list(optimum.columns)), ""]
  with open(os.path.join(root, "summary.md"), "w") as f:
    f.write("\n".join(lines))
  with open(os.path.join(root, "summary.json"), "w") as f:
    json.dump({"runs": len(table), "settings": counts, "preferred": best,
               "against_dense": measured.to_dict("records"),
               "forms": table_forms.to_dict("records"), "optimum": optimum.to_dict("records")},
              f, indent=1, default=json_value)
  print("\n".join(lines))
  return best


def search_picks(root: str, dense_root: str) -> moe_search.MlpComparison:
  """The search step (module doc), with the law `fit` preferred."""
  preferred = preferred_form(root)
  if preferred is None:
    raise UserError("no MoE form was fitted: run the fit step on more runs first")
  law = laws.ConditionalLaw.from_json(os.path.join(root, "laws", f"{preferred}.json"))
  result, both = heldout_search(law, RunsTable.of(fitting_runs(root, dense_root)))
  out = os.path.join(root, "search")
  written = search_report.save(result, out) + moe_report.save(both, out)
  print(moe_report.summary(both))
  print(f"wrote {len(written)} files under {out}")
  return both


def heldout_search(law: laws.ConditionalLaw, fitted: RunsTable
                   ) -> tuple[search.SearchResult, moe_search.MlpComparison]:
  """`law`'s search at HELDOUT with MoE candidates: d_model within the fitting runs' d/sqrt(N) and
  r within theirs (no pick rests on the law's extrapolation), the recipe baseline's predicted loss
  as the target, this CPU's roofline."""
  n_params, n_layers = CPU_V2.scale(HELDOUT)
  step, root_n = CPU_V2.d_step, n_params ** 0.5
  d_models = list(range(step * int(np.ceil(fitted.x.min() * root_n / step)),
                        int(fitted.x.max() * root_n) + 1, step))
  measure = search.RooflineEfficiency(demo.read_hardware(HARDWARE), **demo.SERVE)
  result = search.search(law, n_params, CPU_V2.tokens(n_params), n_layers,
                         CPU_V2.head_dim(n_params), baseline=CPU_V2.baseline(HELDOUT),
                         efficiency=measure, d_models=d_models, gqas=(1, 2, 4, 8),
                         ffn_step=CPU_V2.ffn_step, vocab_size=CPU_V2.model_vocab_size,
                         r_range=(float(fitted.r.min()), float(fitted.r.max())))
  return result, moe_search.compare(result, experts=(4, 8, 16), granularities=(1, 2, 4))


def heldout_means(root: str) -> pd.DataFrame:
  """The runs under ROOT/heldout, one row per shape and setting (`laws.noise.seed_noise`): its
  seeds' mean loss, their count (seeds), SD (seed_sd) and the mean's variance (var_mean, from the
  scale's pooled seed SD), the other columns of its first seed."""
  means = noise.seed_noise(runs.read_table(os.path.join(root, "heldout"))).means
  return means.drop(columns=["shape", "scale"]).rename(columns={"n_seeds": "seeds"})


def heldout_gains(held: RunsTable, laws_dir: str) -> pd.DataFrame:
  """Per mixture trained at the held-out scale beside its dense shape: the measured gain (seed-mean
  loss minus the dense shape's) against each MoE form's (the law's relative loss over the dense
  shape's, times the dense shape's measured loss; the laws in `laws_dir`)."""
  table = against_dense(held).dropna(subset=["vs_dense"])
  table = table[table["setting"] != "dense"]
  frame = held.frame.assign(setting=setting(held))
  for form in forms.MOE_FORMS:
    path = os.path.join(laws_dir, f"{form}.json")
    if not os.path.exists(path):
      continue
    law = laws.ConditionalLaw.from_json(path)
    rel = pd.Series(law.predict(frame, 1.0), index=frame.index)
    predicted = []
    for row in table.itertuples():
      shape = ((frame["d_model"] == row.d_model) & (frame["ffn_dim"] == row.ffn_dim)
               & (frame["n_heads"] == row.n_heads))
      moe = rel[shape & (frame["setting"] == row.setting)].iloc[0]
      dense = rel[shape & (frame["setting"] == "dense")].iloc[0]
      predicted.append((moe / dense - 1) * (row.loss - row.vs_dense))
    table[form] = predicted
  return table.rename(columns={"vs_dense": "measured"})


def validate(root: str, dense_root: str) -> pd.DataFrame:
  """The validate step (module doc)."""
  fitting = fitting_runs(root, dense_root)
  held = heldout_means(root)
  table = RunsTable.of(pd.concat([fitting, held.drop(columns=["seeds", "seed_sd"])],
                                 ignore_index=True))
  scales = list(pd.unique(RunsTable.of(fitting).scale))
  heldout_scale = [s for s in pd.unique(table.scale) if s not in scales][0]
  task = [(scales, heldout_scale)]
  rows = []
  for form in forms.MOE_FORMS:
    try:
      found = laws.cross_scale_validation(table, task, form=form, r_range=None)
      rows.append({"form": form, **found.iloc[0].to_dict()})
    except UserError as e:
      rows.append({"form": form, "error": str(e)[:200]})
  dense = table.rows(setting(table) == "dense")
  rows.append({"form": "multiplicative (dense runs only)", **laws.cross_scale_validation(
      dense, task, form="multiplicative", r_range=None).iloc[0].to_dict()})
  out = pd.DataFrame(rows)
  out.to_csv(os.path.join(root, "validation.csv"), index=False)
  print(markdown_table(out.to_dict("records"), list(out.columns)))
  gains = heldout_gains(RunsTable.of(held.assign(scale=heldout_scale)), os.path.join(root, "laws"))
  gains.to_csv(os.path.join(root, "heldout_gains.csv"), index=False, float_format="%.6g")
  print(f"\n## Gains over dense at {heldout_scale}: measured against each form\n")
  print(markdown_table(gains.to_dict("records"), list(gains.columns)))
  return out


def picks(root: str, trials: int = 3) -> pd.DataFrame:
  """The picks step (module doc)."""
  from lawsearch.bench import throughput  # pylint: disable=import-outside-toplevel

  with open(os.path.join(root, "search", "moe.json")) as f:
    doc = json.load(f)
  law = laws.ConditionalLaw.from_json(os.path.join(root, "laws", f"{preferred_form(root)}.json"))
  held = runs.read_table(os.path.join(root, "heldout"))
  hw = demo.read_hardware(HARDWARE)
  rows = []
  for kind, pick in doc["best"].items():
    spec = arch_lib.from_fields(pick["spec"])
    row = {"pick": kind, "shape": str(spec),
           "predicted_rel": float(law.predict(spec_row(spec), 1.0)[0])}
    mine = held[[arch_lib.from_fields(r) == spec for r in held.to_dict("records")]]
    row.update(seeds=len(mine), loss=float(mine["loss"].mean()) if len(mine) else np.nan,
               predicted_loss=row["predicted_rel"] * float(held["loss"].min()))
    measured = throughput.measure(
        {kind: spec}, hw, batch_sizes=BENCH_BATCHES, input_len=demo.SERVE["input_len"],
        output_len=demo.SERVE["output_len"], trials=trials, dtype="float32", decode_impl="xla",
        attention_impl="grouped")
    for r in measured.records:
      row[f"tok/s b{r['batch']}"] = r["output_tokens_per_s"]
      row[f"roofline b{r['batch']}"] = r["roofline_output_tokens_per_s"]
    rows.append(row)
  out = pd.DataFrame(rows)
  out.to_csv(os.path.join(root, "picks.csv"), index=False)
  print(markdown_table(out.to_dict("records"), list(out.columns)))
  return out


def spec_row(spec: arch_lib.ArchSpec) -> pd.DataFrame:
  """One runs-table row of `spec`'s shape (its fields, N, N_active and r), for the law."""
  return pd.DataFrame([{**spec.fields(), "n_params": spec.non_embedding_params,
                        "n_active": spec.active_non_embedding_params,
                        "mlp_attn_ratio": spec.mlp_attn_ratio}])


def preferred_form(root: str) -> str:
  """The form the fit step preferred (summary.json)."""
  with open(os.path.join(root, "summary.json")) as f:
    return json.load(f)["preferred"]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=DEFAULT_ROOT)
  parser.add_argument("--dense", default=DEFAULT_DENSE)
  parser.add_argument("--boot", type=int, default=200)
  parser.add_argument("steps", nargs="*", choices=("fit", "search", "validate", "picks"),
                      default=["fit"])
  args = parser.parse_args()
  for name in args.steps:
    if name == "fit":
      fit(args.root, args.dense, args.boot)
    elif name == "search":
      search_picks(args.root, args.dense)
    elif name == "validate":
      validate(args.root, args.dense)
    else:
      picks(args.root)


if __name__ == "__main__":
  main()
