"""Does one L_opt per scale bias the law? Replication v2's shapes differ in N by 5-9% within a
scale, and each trains on 20 N tokens, so each run's own L_opt differs by about 1% (0.15 of the
N spread) where the joint L_opt gives a scale one level. On synthetic runs of that kind the one
level pushes the decaying form's gamma from 0.5 to above 1 (tests/test_laws_levels.py).

    JAX_PLATFORMS=cpu .venv/bin/python experiments/noise/l_opt_within_scale.py

Fits the multiplicative and decaying forms on v2's fitting runs (seed means, r in [0.5, 5]) with
the joint levels as they are and `within_scale` (each run's level along the levels' log-log
slope alpha across scales: `laws.levels`), and writes
experiments/results/noise/l_opt_within_scale.json: per scale the N spread (max / min - 1), per
form and variant alpha, MSE, the noise ceiling, the lack-of-fit F and p, gamma and the optimum.
"""

import json
import os
import sys

from lawsearch import laws
from lawsearch.laws import levels
from lawsearch.laws.runs_table import RunsTable
from lawsearch.table import json_value

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "cpu_replication"))
import replication  # pylint: disable=wrong-import-position

ROOT = "experiments/results/cpu_replication_v2"
OUT = "experiments/results/noise/l_opt_within_scale.json"


def main() -> None:
  fitting = replication.fitting_runs(replication.read_table(ROOT), ROOT)
  runs = RunsTable.of(fitting)
  noise = laws.noise.seed_noise(runs)
  means = RunsTable(noise.means.assign(weight=noise.mean_weights()))
  spread = fitting.groupby("scale")["n_params"].agg(lambda n: n.max() / n.min() - 1)
  out = {"command": "JAX_PLATFORMS=cpu .venv/bin/python experiments/noise/l_opt_within_scale.py",
         "runs": f"{ROOT}/runs.csv", "n_spread": spread.to_dict(), "fits": []}
  for form in ("multiplicative", "decaying"):
    for within in (False, True):
      found = levels.joint_levels(means, form, laws.DEFAULT_R_RANGE, within_scale=within)
      summary = laws.fit_runs(fitting.assign(l_opt=levels.level_column(runs, found)), form,
                              l_opt="column", n_boot=0, validate=False)
      lof = summary.lack_of_fit
      out["fits"].append({
          "form": form, "within_scale": within, "alpha": found.attrs["alpha"],
          "mse": summary.law.fit_info.mse, "ceiling": lof.ceiling, "F": lof.f, "p": lof.p,
          "gamma": summary.law.coefficients.get("gamma"),
          "optimum": list(summary.optimum) if summary.optimum else None})
      print(out["fits"][-1])
  with open(OUT, "w") as f:
    json.dump(out, f, indent=1, default=json_value)


if __name__ == "__main__":
  main()
