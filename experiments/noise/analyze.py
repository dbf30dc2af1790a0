"""The noise measurements behind recipe v2, analysed (experiments/noise/train_noise.sh trains them).

    .venv/bin/python experiments/noise/analyze.py [--root experiments/results/noise]

Every finished run under ROOTS -> runs.csv (one row per run: its root, scale, shape, batch size,
warmup, LR multiple, seed, loss), and two summaries:
  lr.json       per scale and batch size, the LR scans: per shape, the seed-mean loss at each LR
                multiple and the optimal multiple (a parabola in log2 LR through the best point
                and its neighbours); what the recipe's LR for that batch (SHARED) gives up
                against each shape's own best; those losses against the gaps between shapes;
                whether the ranking of shapes changes (Spearman between the ranking at the
                shared LR and at each shape's best); the seed SD pooled at the shared LR and
                over every LR.
  lr_rule.json  the LR rule fitted on the batch-8 scans: the optimal multiple as
                log2 m* = a[scale] + b log2(x / X_REF) + c log2(r), with each shape's seed-mean loss
                a parabola in log2 m around m* (its own depth and curvature); b and c with their
                standard errors, and per shape the loss the rule gives up against the scan's best
  recipes.json  per recipe variant at 80k (batch size, warmup, LR multiple), the seed SD pooled
                over the four shapes, its degrees of freedom, and each shape's seed-mean loss:
                does a variant bring the seed SD to 0.01 nats?
Finished records only: a rerun picks up runs that have finished since.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd
from scipy import optimize

from lawsearch import paths, runs
from lawsearch.laws import noise as noise_lib
from lawsearch.laws.validation import spearman
from lawsearch.rundir import RunDir

SHAPE = ("d_model", "ffn_dim", "n_heads")
ROOTS = ("lr_scan", "batch16", "batch8", "warmup20", "lr_scan_b8", "batch4")
SHARED = {32: 1.0, 16: 0.71, 8: 0.5, 4: 0.35}
X_REF = 0.13  # the rule's reference d/sqrt(N): the cross design's r sweep  # the LR multiple of recipe v1's rule at each batch size
COMMAND = "experiments/noise/train_noise.sh; .venv/bin/python experiments/noise/analyze.py"


def read_scan(root: str) -> pd.DataFrame:
  """A noise root's finished runs with their LR multiple (from each run's config and name)."""
  table = runs.collect(root)
  peak, multiple, warmup = [], [], []
  for run_dir in table["run_dir"]:
    config = json.loads(RunDir(run_dir).config.read_text())
    peak.append(config["optimizer"]["peak_lr"])
    warmup.append(config["optimizer"]["warmup_steps"])
    multiple.append(float(run_dir.rsplit("-lr", 1)[1].split("-")[0]))
  table = table.assign(peak_lr=peak, lr_multiple=multiple, warmup=warmup)
  table["scale"] = np.where(table["n_params"] < 1.1e5, "80k", "145k")
  table["shape"] = [f"d{d}-f{f}-h{h}" for d, f, h in table[list(SHAPE)].to_numpy()]
  table["run"] = [os.path.basename(r) for r in table["run_dir"]]
  table["root"] = os.path.basename(os.path.normpath(root))
  keep = ["root", "scale", "shape", "d_model", "ffn_dim", "n_heads", "n_params", "d_over_sqrt_n",
          "mlp_attn_ratio", "lr_multiple", "peak_lr", "seed", "loss", "loss_se", "train_loss",
          "tokens", "steps", "batch_size", "warmup", "run"]
  return table[keep].sort_values(["scale", "shape", "lr_multiple", "seed"]).reset_index(drop=True)


def best_multiple(multiples: np.ndarray, losses: np.ndarray) -> float:
  """The LR multiple minimising a parabola in log2(multiple) through the best point and its two
  neighbours (the best point itself at the scan's edge)."""
  order = np.argsort(multiples)
  m, y = np.log2(multiples[order]), losses[order]
  i = int(np.argmin(y))
  if i in (0, len(m) - 1):
    return float(2 ** m[i])
  a, b, _ = np.polyfit(m[i - 1:i + 2], y[i - 1:i + 2], 2)
  return float(2 ** (-b / (2 * a))) if a > 0 else float(2 ** m[i])


def read_all(root: str) -> pd.DataFrame:
  """Every finished run under root's ROOTS (read_scan)."""
  return pd.concat([read_scan(os.path.join(root, sub)) for sub in ROOTS
                    if paths.find(os.path.join(root, sub), RunDir.RESULT)], ignore_index=True)


def analyse(table: pd.DataFrame) -> dict:
  """lr.json (module doc) from the runs at the recipe's 5% warmup."""
  scan = table[table["warmup"] == 0.05]
  out = {"runs": len(scan), "scans": {}}
  for (scale, batch), rows in scan.groupby(["scale", "batch_size"], sort=False):
    if rows["lr_multiple"].nunique() < 3:
      continue  # not a scan
    shared_multiple = SHARED[int(batch)]
    means = rows.groupby(["shape", "lr_multiple"])["loss"].agg(["mean", "std", "size"])
    shapes = {}
    for shape, per in means.groupby(level=0):
      per = per.droplevel(0)
      full = len(per) >= 3
      shared = float(per["mean"].get(shared_multiple, np.nan))
      best = float(per["mean"].min())
      shapes[shape] = {
          "x": float(rows.loc[rows["shape"] == shape, "d_over_sqrt_n"].iloc[0]),
          "r": float(rows.loc[rows["shape"] == shape, "mlp_attn_ratio"].iloc[0]),
          "loss_by_multiple": {f"{m:g}": round(float(v), 5) for m, v in per["mean"].items()},
          "seeds_by_multiple": {f"{m:g}": int(n) for m, n in per["size"].items()},
          "best_multiple": best_multiple(per.index.to_numpy(float), per["mean"].to_numpy())
          if full else None,
          "loss_at_shared_lr": shared, "loss_at_best_lr": best,
          "given_up_by_shared_lr": shared - best}
    at_shared = {s: v["loss_at_shared_lr"] for s, v in shapes.items()}
    at_best = {s: v["loss_at_best_lr"] for s, v in shapes.items()}
    names = sorted(shapes)
    gaps = np.diff(sorted(at_shared.values()))
    shared_rows = rows[rows["lr_multiple"] == shared_multiple]
    noise_shared = noise_lib.seed_noise(shared_rows.assign(scale=scale))
    noise_all = noise_lib.seed_noise(rows.assign(scale=scale))
    out["scans"][f"{scale}, batch {batch}"] = {
        "scale": scale, "batch_size": int(batch), "shared_multiple": shared_multiple,
        "shapes": shapes,
        "best_multiples": [shapes[s]["best_multiple"] for s in names],
        "spread_of_best_multiple": (max(filter(None, (shapes[s]["best_multiple"] for s in names)),
                                        default=np.nan)
                                    / min(filter(None, (shapes[s]["best_multiple"] for s in names)),
                                          default=np.nan)),
        "max_given_up": max(v["given_up_by_shared_lr"] for v in shapes.values()),
        "gaps_between_shapes_at_shared_lr": [round(float(g), 5) for g in gaps],
        "ranking_spearman_shared_vs_best": spearman(
            np.array([at_shared[s] for s in names]), np.array([at_best[s] for s in names])),
        "seed_sd_at_shared_lr": float(noise_shared.by_scale["pooled_sd"].iloc[0]),
        "seed_sd_all_lrs": float(noise_all.by_scale["pooled_sd"].iloc[0]),
        "seed_df_all_lrs": int(noise_all.by_scale["df"].iloc[0]),
    }
  return out


def lr_rule(table: pd.DataFrame, batch_size: int = 8) -> dict:
  """lr_rule.json (module doc): a least-squares fit on every (shape, LR multiple) seed mean of
  the scans at `batch_size` and 5% warmup."""
  scan = table[(table["batch_size"] == batch_size) & (table["warmup"] == 0.05)]
  means = scan.groupby(["scale", "shape", "lr_multiple"]).agg(
      loss=("loss", "mean"), x=("d_over_sqrt_n", "first"), r=("mlp_attn_ratio", "first"),
      seeds=("loss", "size")).reset_index()
  shapes = means.groupby(["scale", "shape"]).filter(lambda g: len(g) >= 3)
  keys = sorted(set(zip(shapes["scale"], shapes["shape"])))
  scales = sorted(set(shapes["scale"]))
  shape_index = np.array([keys.index(k) for k in zip(shapes["scale"], shapes["shape"])])
  scale_index = np.array([scales.index(s) for s in shapes["scale"]])
  log_m = np.log2(shapes["lr_multiple"].to_numpy())
  log_x = np.log2(shapes["x"].to_numpy() / X_REF)
  log_r = np.log2(shapes["r"].to_numpy())
  loss = shapes["loss"].to_numpy()
  n_keys, n_scales = len(keys), len(scales)

  def unpack(p):
    depth, log_curv = p[:n_keys], p[n_keys:2 * n_keys]
    a, (b, c) = p[2 * n_keys:2 * n_keys + n_scales], p[-2:]
    return depth, np.exp(log_curv), a, b, c

  def optimum(p):
    _, _, a, b, c = unpack(p)
    return a[scale_index] + b * log_x + c * log_r

  def residuals(p):
    depth, curv, *_ = unpack(p)
    return depth[shape_index] + curv[shape_index] * (log_m - optimum(p)) ** 2 - loss

  start = np.concatenate([[loss[shape_index == i].min() for i in range(n_keys)],
                          np.full(n_keys, np.log(0.05)), np.zeros(n_scales), [0.0, 0.0]])
  fit = optimize.least_squares(residuals, start)
  dof = max(len(loss) - len(start), 1)
  sigma2 = float(fit.fun @ fit.fun) / dof
  cov = np.linalg.pinv(fit.jac.T @ fit.jac) * sigma2
  depth, curv, a, b, c = unpack(fit.x)
  per_shape = {}
  for i, (scale, shape) in enumerate(keys):
    rows = shapes[shape_index == i]
    rule = float(2 ** optimum(fit.x)[shape_index == i][0])
    per_shape[f"{scale} {shape}"] = {
        "x": float(rows["x"].iloc[0]), "r": float(rows["r"].iloc[0]),
        "rule_multiple": rule, "model_loss_at_rule": float(depth[i]),
        "best_scanned_loss": float(rows["loss"].min()),
        "given_up_at_nearest_scanned_multiple": float(
            rows.loc[(np.log2(rows["lr_multiple"]) - np.log2(rule)).abs().idxmin(), "loss"]
            - rows["loss"].min())}
  return {"batch_size": batch_size, "x_ref": X_REF, "points": len(loss),
          "intercept_log2_by_scale": dict(zip(scales, map(float, a))),
          "width_exponent": float(b), "width_exponent_se": float(np.sqrt(cov[-2, -2])),
          "r_exponent": float(c), "r_exponent_se": float(np.sqrt(cov[-1, -1])),
          "residual_sd": float(np.sqrt(sigma2)), "shapes": per_shape}


def recipes(table: pd.DataFrame) -> dict:
  """recipes.json (module doc)."""
  table = table[table["scale"] == "80k"]
  out = {}
  for (batch, warmup, lr), rows in table.groupby(["batch_size", "warmup", "lr_multiple"]):
    noise = noise_lib.seed_noise(rows.assign(scale="80k"))
    out[f"batch {batch}, warmup {warmup:g}, LR x{lr:g}"] = {
        "batch_size": int(batch), "warmup": float(warmup), "lr_multiple": float(lr),
        "steps": int(rows["steps"].iloc[0]), "runs": len(rows),
        "seed_sd": float(noise.by_scale["pooled_sd"].iloc[0]),
        "seed_df": int(noise.by_scale["df"].iloc[0]),
        "loss_by_shape": {shape: round(float(v), 5)
                          for shape, v in rows.groupby("shape")["loss"].mean().items()},
        "mean_loss": float(rows.groupby("shape")["loss"].mean().mean())}
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default="experiments/results/noise")
  args = parser.parse_args()
  table = read_all(args.root)
  table.to_csv(os.path.join(args.root, "runs.csv"), index=False)
  lr, rule, by_recipe = analyse(table), lr_rule(table), recipes(table)
  for name, doc in (("lr.json", lr), ("lr_rule.json", rule), ("recipes.json", {"recipes": by_recipe})):
    with open(os.path.join(args.root, name), "w") as f:
      json.dump({"command": COMMAND, **doc}, f, indent=1, default=float)
  for name, r in by_recipe.items():
    print(f"80k {name} ({r['steps']} steps): seed SD {r['seed_sd']:.4f} ({r['seed_df']} df), "
          f"mean loss {r['mean_loss']:.4f}")
  print(f"LR rule at batch {rule['batch_size']}: m* = 2^a[scale] (x/{X_REF})^"
        f"{rule['width_exponent']:.2f}+-{rule['width_exponent_se']:.2f} r^"
        f"{rule['r_exponent']:.2f}+-{rule['r_exponent_se']:.2f}, a = "
        f"{ {k: round(v, 2) for k, v in rule['intercept_log2_by_scale'].items()} }, "
        f"residual SD {rule['residual_sd']:.4f}")
  for name, s in lr["scans"].items():
    print(f"{name}: seed SD {s['seed_sd_at_shared_lr']:.4f} at the shared LR, "
          f"{s['seed_sd_all_lrs']:.4f} over all LRs ({s['seed_df_all_lrs']} df); the shared LR "
          f"gives up at most {s['max_given_up']:.4f}; ranking Spearman "
          f"{s['ranking_spearman_shared_vs_best']:.2f}")
    for shape, v in s["shapes"].items():
      print(f"  {shape} (x {v['x']:.3f}, r {v['r']:.2f}): best x{v['best_multiple']} "
            f"{v['loss_by_multiple']}")


if __name__ == "__main__":
  main()
