"""L_opt per scale three ways on the committed CPU replication (v1): the paper's lowest loss per
scale, one level per scale fitted jointly with the law, and a Chinchilla law fitted on the runs.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/noise/l_opt_v1.py

Writes experiments/results/noise/l_opt_v1.json: per source, the multiplicative law fitted on the
fitting scales (80k, 145k, 297k; r in [0.5, 5]): its L_opt per scale, MSE, the optimum with its
95% bootstrap interval (1000 refits), and the cross-scale validation on every scale up to 600k.
"""

import json

import pandas as pd

from lawsearch import laws

RUNS = "experiments/results/cpu_replication/runs.csv"
OUT = "experiments/results/noise/l_opt_v1.json"
FIT_SCALES = ("80k", "145k", "297k")


def main() -> None:
  table = pd.read_csv(RUNS)
  fitting = table[table["scale"].isin(FIT_SCALES)]
  out = {"command": "JAX_PLATFORMS=cpu .venv/bin/python experiments/noise/l_opt_v1.py",
         "runs": RUNS, "sources": {}}
  for source in ("empirical", "joint", "fit"):
    fitted = laws.fit_runs(fitting, l_opt=source, n_boot=1000, validate=False)
    checked = laws.fit_runs(table, l_opt=source, validate=True).assessment.validation
    interval = fitted.optimum_interval
    out["sources"][source] = {
        "l_opt_by_scale": fitted.l_opt_by_scale, "mse": fitted.law.fit_info.mse,
        "coefficients": fitted.law.coefficients,
        "optimum": list(fitted.optimum) if fitted.optimum else None,
        "d_over_sqrt_n_95": interval.loc["x_star", ["low", "high"]].tolist(),
        "mlp_attn_ratio_95": interval.loc["r_star", ["low", "high"]].tolist(),
        "validation": checked[["task", "mse", "spearman"]].to_dict("records")}
    s = out["sources"][source]
    print(f"{source}: L_opt {s['l_opt_by_scale']}, MSE {s['mse']:.4g}, optimum "
          f"{s['optimum']} x in {s['d_over_sqrt_n_95']}, r in {s['mlp_attn_ratio_95']}")
    print(checked[["task", "mse", "spearman"]].to_string(index=False))
  with open(OUT, "w") as f:
    json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
