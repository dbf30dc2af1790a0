"""A Markdown report of a fitted conditional law on its runs: `lawsearch report`.

    write(law, df, out_dir, l_opt=...) -> out_dir/report.md (+ the fit's three plots beside it)

Sections: the runs per scale, the law (coefficients, optimum, error on the runs), the plots
(`fit_plots.save`), cross-scale validation (refits on the smaller scales, predicting the next;
`laws.cross_scale_validation`), residual trends (`laws.residual_diagnostics`) and the best runs of
each scale. Everything is computed from the law and the table given; nothing is refitted except
the validation's own refits.
"""

from __future__ import annotations

import numpy as np

from lawsearch import laws, paths
from lawsearch.laws import runs_table, validation
from lawsearch.report import fit_plots
from lawsearch.table import markdown_table


def _runs_section(df, labels) -> list[str]:
  rows = []
  for scale in runs_table.scale_order(df, labels):
    mask = labels == scale
    part = df[mask]
    rows.append({"scale": runs_table.median_size(df, mask), "runs": len(part),
                 "tokens": float(np.median(part["tokens"])), "best loss": float(part["loss"].min()),
                 "worst loss": float(part["loss"].max())})
  return ["## Runs", "", markdown_table(rows, list(rows[0])), ""]


def _best_section(df, labels, k: int = 3) -> list[str]:
  rows = []
  for scale in runs_table.scale_order(df, labels):
    for _, run in df[labels == scale].nsmallest(k, "loss").iterrows():
      rows.append({"N": int(run["n_params"]), "d_model": int(run["d_model"]),
                   "r": float(run["mlp_attn_ratio"]),
                   "d/sqrt(N)": float(run["d_model"] / np.sqrt(run["n_params"])),
                   "loss": float(run["loss"])})
  return [f"## The best {k} runs of each scale", "", markdown_table(rows, list(rows[0])), ""]


def _downstream_section(df) -> list[str]:
  """The runs scored on the downstream tasks (`lawsearch eval --tasks`), best loss first: each
  task's headline accuracy and the mean; [] when no run was scored."""
  tasks = [c for c in df.columns if c.startswith("acc_") and c not in ("acc_mean",
                                                                        "acc_mean_chance")]
  scored = df[df[tasks].notna().any(axis=1)] if tasks else df.iloc[:0]
  if scored.empty:
    return []
  rows = [{"N": int(run["n_params"]), "d_model": int(run["d_model"]),
           "r": float(run["mlp_attn_ratio"]), "loss": float(run["loss"]),
           **{c.removeprefix("acc_"): float(run[c]) for c in tasks},
           **({"mean": float(run["acc_mean"]), "chance": float(run["acc_mean_chance"])}
              if "acc_mean" in run else {})}
          for _, run in scored.sort_values("loss").iterrows()]
  return ["## Downstream accuracy (`lawsearch eval --tasks`; headline metric per task)", "",
          markdown_table(rows, list(rows[0])), ""]


def write(law, df, out_dir: str, l_opt=None) -> str:
  """Writes out_dir/report.md and the plots beside it; returns the report's path. Validation and
  diagnostics use the law's own r filter (the default one for a law that was not fitted)."""
  table = laws.RunsTable.of(df, "the report")
  df, labels = table.frame, table.scale
  plots = fit_plots.save(law, table, out_dir, l_opt=l_opt)
  info = law.fit_info
  lines = [f"# lawsearch report: the {law.form} law on {len(df)} runs", ""]
  lines += _runs_section(df, labels)
  lines += ["## The law", ""]
  if info is not None:
    lines += [f"Fitted on {info.n_points} runs ({info.n_excluded} outside the r filter "
              f"{info.r_range}), L_opt {info.l_opt}: MSE {info.mse:.4g} (loss units).", ""]
  lines += [markdown_table([{"coefficient": k, "value": float(v)}
                            for k, v in law.coefficients.items()], ["coefficient", "value"]), ""]
  try:
    x_star, r_star = law.optimum()
    lines += [f"Optimum: **d/sqrt(N) = {x_star:.4g}, r = {r_star:.4g}**.", ""]
  except ValueError as e:
    lines += [f"No interior optimum: {e}", ""]
  noise = laws.noise.seed_noise(table)
  r_range = info.r_range if info is not None else laws.DEFAULT_R_RANGE
  lof, note = laws.noise_check(law, noise, laws.RunsTable(noise.means), l_opt, r_range)
  lines += ["## Seed noise (a law is a measurement: its MSE against a perfect law's)", "",
            "```", *laws.noise_lines(noise, lof, note), "```", ""]
  lines += ["## Plots", ""] + [f"![{paths.path(p).stem}]({paths.path(p).name})"
                               for p in plots] + [""]
  checked = laws.assess(law, table, l_opt=l_opt)
  lines += ["## Cross-scale validation (fit on the smaller scales, predict the next)", ""]
  if checked.validation is not None:
    lines += [markdown_table(checked.validation.to_dict("records"),
                             list(checked.validation.columns)), "", validation.CEILING_NOTE, ""]
  else:
    lines += [f"Skipped: {checked.validation_skipped}", ""]
  diag = checked.diagnostics
  lines += ["## Residual trends (|z| > 3 is flagged: the form or L_opt misses something)", "",
            markdown_table(diag.to_dict("records"), list(diag.columns)), ""]
  lines += _best_section(df, labels)
  lines += _downstream_section(df)
  path = str(paths.path(out_dir) / "report.md")
  paths.write_text(path, "\n".join(lines))
  return path
