"""The paper's claims on lawsearch's own runs: a sweep's run directories -> the laws, their
cross-scale validation, Algorithm 1 at the held-out scale, and the picks measured against their
predictions. Written for the CPU replication (`recipe=cpu`, experiments/cpu_replication/), whose
results are committed under experiments/results/cpu_replication/:

    table(root)   -> runs.csv      every finished run of root/fit and root/heldout, with its scale
                                   and role (sweep, baseline, panda, surefire)
    fit(root)     -> law_*.json, fit.json, validation.csv
    search(root)  -> search/       (and hardware.json: this CPU, measured)
    bench(root)   -> bench.json    decode throughput of the picks against the roofline
    report(root)  -> picks.csv, report/report.md

Each stage reads what the earlier ones wrote; `make demo` reads runs.csv and picks.csv.
"""

from __future__ import annotations

import datetime
import json
import math
import os

import numpy as np
import pandas as pd

from lawsearch import arch, laws, rundir, runs
from lawsearch.laws import ConditionalLaw
from lawsearch.recipe import CPU

ROOT = "experiments/results/cpu_replication"  # relative to a checkout
FORMS = ("multiplicative", "additive", "joint")  # joint: the separability check
# The paper's progressive validation (PAPER.md section 3): 80M -> 145M, 80M+145M -> 297M,
# 80M..297M -> 1B; ours: 80k -> 145k, 80k+145k -> 297k, 80k..297k -> 600k.
PAPER_VALIDATION = ((0.0002, 0.8909), (0.0001, 0.7920), (0.0001, 0.7451))
SHAPE = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim")
# Serving scenario: the paper's 4096 in / 1024 out at a 2048-token training context, scaled to
# the recipe's 128 (1/16); float32 weights and KV cache, as the CPU runs them.
SERVE = dict(batch=32, input_len=256, output_len=64, bytes_per_element=4)
BENCH_BATCHES = (1, 8, 32)


def _shape(row) -> tuple:
  """The shape of a runs-table row (or a dict of ArchSpec fields) as a tuple."""
  return tuple(int(row[f]) for f in SHAPE)


def _spec_shape(spec: arch.ArchSpec) -> tuple:
  return tuple(getattr(spec, f) for f in SHAPE)


def _write_json(path: str, obj) -> None:
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=1, default=float)
  os.replace(path + ".tmp", path)


def _scale_of(n_params: float) -> str:
  return min(CPU.scales, key=lambda s: abs(math.log(n_params / s[1])))[0]


def pick_specs(root: str) -> dict[str, arch.ArchSpec]:
  """baseline, panda, surefire: the recipe's baseline and the search's picks (once searched)."""
  specs = {"baseline": CPU.baseline(CPU.heldout_scale)}
  path = os.path.join(root, "search", "search.json")
  if os.path.exists(path):
    found = rundir.read_file(path, "search")["picks"]
    specs.update({k: arch.from_fields(found[k]) for k in ("panda", "surefire")})
  return specs


# -- table -----------------------------------------------------------------------------------------
def table(root: str) -> pd.DataFrame:
  """runs.csv: one row per finished run, with its scale and role."""
  frames = []
  for part in ("fit", "heldout"):
    if os.path.isdir(os.path.join(root, part)):
      frames.append(runs.collect(os.path.join(root, part)).assign(part=part))
  df = pd.concat(frames, ignore_index=True)
  df["scale"] = [_scale_of(n) for n in df["n_params"]]
  df["gqa"] = df["n_heads"] // df["n_kv_heads"]
  roles = {_spec_shape(spec): name for name, spec in pick_specs(root).items()}
  df["role"] = [roles.get(_shape(r), "sweep") if r["part"] == "heldout" else "sweep"
                for _, r in df.iterrows()]
  df["run"] = [os.path.basename(p) for p in df["run_dir"]]
  df["paired_se"] = paired_standard_errors(df)
  columns = ["run", "part", "scale", "role", "seed", *SHAPE, "gqa", "vocab_size", "n_params",
             "total_params", "tokens", "d_over_sqrt_n", "mlp_attn_ratio", "loss", "loss_se",
             "paired_se", "train_loss", "tokens_per_s", "steps"]
  columns += [c for c in ("peak_lr", "batch_size") if c in df]  # records since the noise work
  df = df[columns].sort_values(["part", "n_params", "d_model", "ffn_dim", "seed"])
  df.to_csv(os.path.join(root, "runs.csv"), index=False, float_format="%.6g")
  print(f"runs.csv: {len(df)} runs ({', '.join(f'{k} {v}' for k, v in df['scale'].value_counts().sort_index().items())})")
  return df


def paired_standard_errors(df: pd.DataFrame) -> np.ndarray:
  """Per run, the standard error of its loss minus the loss of its scale's best run, both on the
  same held-out sample: a block bootstrap of the per-block differences (`heldout_block_loss`).
  Far below a run's own `loss_se`, since most of the sample's spread is shared by every model."""
  from lawsearch.train.metrics import block_bootstrap_se  # numpy only

  out = np.full(len(df), np.nan)
  if "heldout_block_loss" not in df:
    return out
  for _, group in df.groupby("scale"):
    best = group.loc[group["loss"].idxmin()]
    for i, row in group.iterrows():
      if not isinstance(row["heldout_block_loss"], list):
        continue
      diff = np.subtract(row["heldout_block_loss"], best["heldout_block_loss"])
      out[df.index.get_loc(i)] = block_bootstrap_se(diff, row["heldout_block_windows"])
  return out


def resolution(df: pd.DataFrame, law: ConditionalLaw) -> pd.DataFrame:
  """Per fitting scale: the smallest loss difference the law predicts between neighbouring grid
  points (along the x sweep at fixed r and the r sweep at fixed d_model, as measured) against the
  median standard errors of a run's loss and of a paired difference; the issue's bar is an
  error at most a quarter of that difference."""
  rows = []
  fitting = fitting_runs(df)
  l_opt = laws.l_opt.for_table(fitting, "empirical")
  predicted = np.asarray(law.predict_xr(fitting["d_over_sqrt_n"], fitting["mlp_attn_ratio"],
                                        l_opt))
  for scale, group in fitting.groupby("scale", sort=False):
    pred = pd.Series(predicted[group.index], index=group.index)
    cross_d = group["d_model"].value_counts().idxmax()  # the r sweep's d_model
    r_sweep = group[group["d_model"] == cross_d].sort_values("mlp_attn_ratio").index
    x_sweep = group[(group["mlp_attn_ratio"] - CPU.cross_r).abs() < 0.25].sort_values(
        "d_over_sqrt_n").index
    gaps = [abs(np.diff(pred[idx].to_numpy())) for idx in (x_sweep, r_sweep) if len(idx) > 1]
    smallest = float(np.concatenate(gaps).min()) if gaps else float("nan")
    rows.append({"scale": scale, "smallest_neighbour_difference": smallest,
                 "median_loss_se": float(group["loss_se"].median()),
                 "median_paired_se": float(group["paired_se"].median()),
                 "paired_se_within_a_quarter": bool(group["paired_se"].median() <= smallest / 4)})
  return pd.DataFrame(rows)


def read_table(root: str) -> pd.DataFrame:
  return pd.read_csv(os.path.join(root, "runs.csv"))


def fitting_runs(df: pd.DataFrame) -> pd.DataFrame:
  return df[df["scale"].isin(CPU.fit_scales)].reset_index(drop=True)


def validation_runs(df: pd.DataFrame) -> pd.DataFrame:
  """The fitting scales and every held-out-scale run (seeds averaged: one point per shape)."""
  held = df[df["scale"] == CPU.heldout_scale]
  mean = held.groupby(list(SHAPE), as_index=False).agg(
      {**{c: "first" for c in held.columns if c not in (*SHAPE, "loss")}, "loss": "mean"})
  return pd.concat([fitting_runs(df), mean], ignore_index=True)


# -- fit ---------------------------------------------------------------------------------------------
def validation(df: pd.DataFrame, form: str, l_opt: str = "empirical") -> pd.DataFrame:
  """The paper's progressive cross-scale validation over every scale of the table (the last task
  predicts the held-out scale), with the paper's MSE and Spearman beside each task. l_opt
  "joint": every scale's level fitted with the law on the whole table (`laws.levels`)."""
  if l_opt == "joint":
    assessment = laws.fit_runs(validation_runs(df), form, l_opt="joint").assessment
    if assessment.validation is None:
      raise ValueError(assessment.validation_skipped)
    val = assessment.validation
  else:
    val = laws.cross_scale_validation(validation_runs(df), form=form, l_opt=l_opt)
  val.insert(0, "form", form)
  paper = [PAPER_VALIDATION[i] if i < len(PAPER_VALIDATION) else (None, None)
           for i in range(len(val))]
  val["paper_mse"], val["paper_spearman"] = [p[0] for p in paper], [p[1] for p in paper]
  return val


def fit_law(df: pd.DataFrame, form: str, n_boot: int = 0, r_range=laws.DEFAULT_R_RANGE,
            l_opt: str = "empirical") -> tuple[ConditionalLaw, dict, list[str]]:
  """The law on the table's fitting scales (L_opt: "empirical", the paper's, or "joint"; r in
  `r_range`: the paper's [0.5, 5]; None = every run), a summary (coefficients, MSE, the optimum
  with 95% bootstrap intervals from `n_boot` refits, 0 = none, the seed noise and the residual
  trends) and the noise's lines to print."""
  fitted = laws.fit_runs(fitting_runs(df), form, l_opt=l_opt, r_range=r_range,
                         n_boot=n_boot, validate=False)
  summary = fitted.to_dict()
  summary.pop("validation_error")  # the replication validates across every scale: validation()
  return fitted.law, summary, fitted.noise_lines()


def _interval(optimum: dict, key: str, digits: int) -> str:
  """A bootstrap interval as "[low, high]" ("" without a bootstrap)."""
  low_high = optimum.get(key)
  return f"[{low_high[0]:.{digits}f}, {low_high[1]:.{digits}f}]" if low_high else ""


def fit(root: str, n_boot: int = 1000, l_opt: str = "empirical") -> dict:
  """Both forms on runs.csv: law_<form>.json, fit.json (summaries) and validation.csv."""
  df = read_table(root)
  out = {"n_runs": len(fitting_runs(df)), "scales": list(CPU.fit_scales), "l_opt": l_opt,
         "forms": {}}
  validations = []
  for form in FORMS:
    law, summary, _ = fit_law(df, form, n_boot, l_opt=l_opt)
    law.to_json(os.path.join(root, f"law_{form}.json"))
    out["forms"][form] = summary
    if form == "multiplicative":
      out["resolution"] = resolution(df, law).to_dict("records")
    opt = summary["optimum"]
    print(f"{form}: {summary['n_points']} runs, MSE {summary['mse']:.3g}; optimum "
          + (f"d/sqrt(N) {opt['d_over_sqrt_n']:.3f} {_interval(opt, 'd_over_sqrt_n_95', 3)}, "
             f"r {opt['mlp_attn_ratio']:.2f} {_interval(opt, 'mlp_attn_ratio_95', 2)}"
             if "error" not in opt else opt["error"]))
    try:
      validations.append(validation(df, form, l_opt))
    except ValueError as e:  # fewer than two scales, or too few runs at the smallest
      summary["validation_error"] = str(e)
  # The paper's filter drops r outside [0.5, 5]; the same law on every run shows what it hides.
  _, out["forms"]["multiplicative, every r"], _ = fit_law(df, "multiplicative", 0, r_range=None,
                                                         l_opt=l_opt)
  if validations:
    val = pd.concat(validations, ignore_index=True)
    val.to_csv(os.path.join(root, "validation.csv"), index=False, float_format="%.6g")
    print(val.to_string(index=False))
    out["validation"] = val.to_dict("records")
  _write_json(os.path.join(root, "fit.json"), out)
  return out


def heldout_check(df: pd.DataFrame, law: ConditionalLaw) -> tuple[pd.DataFrame, dict]:
  """Does the law, fitted on the fitting scales, pick the held-out scale's best run?

  Every shape trained at the held-out scale (grid, baseline, picks; seeds averaged), the law's
  predicted loss relative to L_opt and absolute (L_opt: the scale's lowest measured loss) beside
  the measured one, and both ranks; and a summary: the Spearman correlation, the measured best
  shape, the law's best among the trained shapes with its measured rank and its gap to the best
  in units of the paired standard error (held-out sampling only) beside the largest difference
  between two seeds of one shape (the noise that dominates), and where the law's own optimum
  lies."""
  from scipy import stats  # pylint: disable=g-import-not-at-top

  held = df[df["scale"] == CPU.heldout_scale]
  if held.empty:
    raise ValueError(f"no run at the held-out scale {CPU.heldout_scale} yet")
  shapes = held.groupby(list(SHAPE), as_index=False).agg(
      role=("role", "first"), seeds=("loss", "size"), d_over_sqrt_n=("d_over_sqrt_n", "first"),
      mlp_attn_ratio=("mlp_attn_ratio", "first"), gqa=("gqa", "first"), loss=("loss", "mean"),
      paired_se=("paired_se", "max"), seed_range=("loss", lambda v: float(v.max() - v.min())))
  l_opt = float(held["loss"].min())
  with laws.float64():
    shapes["predicted_rel"] = np.asarray(law.predict_xr(
        shapes["d_over_sqrt_n"].to_numpy(), shapes["mlp_attn_ratio"].to_numpy(), 1.0))
  shapes["predicted_loss"] = shapes["predicted_rel"] * l_opt
  shapes["measured_rank"] = shapes["loss"].rank(method="min").astype(int)
  shapes["predicted_rank"] = shapes["predicted_rel"].rank(method="min").astype(int)
  shapes = shapes.sort_values("loss").reset_index(drop=True)
  best, chosen = shapes.iloc[0], shapes.loc[shapes["predicted_rel"].idxmin()]
  gap = float(chosen["loss"] - best["loss"])
  seed_sd = float(laws.noise.seed_noise(held).by_scale["pooled_sd"].iloc[0])  # NaN with one seed each
  summary = {
      "shapes": len(shapes), "seed_spread": float(shapes["seed_range"].max()),
      "spearman": float(stats.spearmanr(shapes["predicted_rel"], shapes["loss"])[0]),
      "measured_best": {"d_model": int(best["d_model"]), "ffn_dim": int(best["ffn_dim"]),
                        "gqa": int(best["gqa"]), "role": best["role"],
                        "d_over_sqrt_n": float(best["d_over_sqrt_n"]),
                        "mlp_attn_ratio": float(best["mlp_attn_ratio"]),
                        "loss": float(best["loss"])},
      "law_best_trained": {"d_model": int(chosen["d_model"]), "ffn_dim": int(chosen["ffn_dim"]),
                           "gqa": int(chosen["gqa"]), "role": chosen["role"],
                           "measured_rank": int(chosen["measured_rank"]),
                           "loss": float(chosen["loss"]), "gap_to_best": gap,
                           "gap_in_paired_se": (gap / float(chosen["paired_se"])
                                                if chosen["paired_se"] > 0 else 0.0),
                           "gap_in_seed_sd": gap / seed_sd if seed_sd > 0 else float("nan")},
      "seed_sd": seed_sd}
  try:
    x_star, r_star = law.optimum()
    summary["law_optimum"] = {"d_over_sqrt_n": x_star, "mlp_attn_ratio": r_star}
  except ValueError as e:
    summary["law_optimum"] = {"error": str(e).split(":")[0]}
  return shapes, summary


# -- search ------------------------------------------------------------------------------------------
def measured_hardware(root: str):
  """This CPU (both cores) as a cost.Hardware: root/hardware.json, measured and written there on
  first use (lawsearch.bench.host.measure), so searches and benchmarks share one measurement."""
  from lawsearch import cost

  path = os.path.join(root, "hardware.json")
  if not os.path.exists(path):
    from lawsearch.bench import host

    hw = host.measure("cpu-2core (measured)")
    os.makedirs(root, exist_ok=True)
    _write_json(path, {"name": hw.name, "peak_flops": hw.peak_flops,
                       "hbm_bandwidth": hw.hbm_bandwidth, "hbm_bytes": hw.hbm_bytes,
                       "measured_by": "lawsearch.bench.host.measure"})
  with open(path) as f:
    rec = json.load(f)
  return cost.Hardware(rec["name"], rec["peak_flops"], rec["hbm_bandwidth"], rec["hbm_bytes"])


def efficiency(root: str):
  """The search's measure: the roofline of this CPU in the scaled-down serving scenario SERVE."""
  from lawsearch import search as search_lib

  return search_lib.RooflineEfficiency(measured_hardware(root), **SERVE)


def run_search(law: ConditionalLaw, df: pd.DataFrame, measure):
  """Algorithm 1 at the held-out scale for the recipe's baseline's predicted loss (relative to
  L_opt), over candidates inside the region the law was fitted on: d/sqrt(N) within the fitting
  runs' range and r within the fit's r filter (the law is not trusted beyond them)."""
  from lawsearch import search as search_lib

  fitted = fitting_runs(df)
  n_params, n_layers = CPU.scale(CPU.heldout_scale)
  step, root_n = CPU.d_step, math.sqrt(n_params)
  x_low, x_high = fitted["d_over_sqrt_n"].min(), fitted["d_over_sqrt_n"].max()
  d_models = list(range(step * math.ceil(x_low * root_n / step), int(x_high * root_n) + 1, step))
  return search_lib.search(
      law, n_params, CPU.tokens(n_params), n_layers, CPU.head_dim(n_params),
      baseline=CPU.baseline(CPU.heldout_scale), efficiency=measure, d_models=d_models,
      gqas=(1, 2, 4, 8), ffn_step=CPU.ffn_step, vocab_size=CPU.model_vocab_size, max_gqa=16,
      r_range=law.fit_info.r_range if law.fit_info else None)


def search(root: str):
  """run_search with the committed multiplicative law; writes root/search/."""
  from lawsearch.report import search_report

  law = ConditionalLaw.from_json(os.path.join(root, "law_multiplicative.json"))
  result = run_search(law, read_table(root), efficiency(root))
  print(search_report.summary(result))
  written = search_report.save(result, os.path.join(root, "search"))
  print(f"wrote {len(written)} files under {os.path.join(root, 'search')}")
  return result


# -- bench -------------------------------------------------------------------------------------------
def bench(root: str, trials: int = 5) -> list[dict]:
  """Decode throughput of the picks in the scaled protocol, appended to bench.json with the time
  of this sitting (`measured_at`, UTC): a shared 2-core machine varies by 20% between sittings,
  so the report takes the median over all of them."""
  from lawsearch.bench import throughput

  hw = measured_hardware(root)
  path = os.path.join(root, "bench.json")
  records = read_bench(root)
  now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  for name, spec in pick_specs(root).items():
    cfg = throughput.BenchConfig(arch=spec, batch_sizes=BENCH_BATCHES,
                                 input_len=SERVE["input_len"], output_len=SERVE["output_len"],
                                 trials=trials, dtype="float32", decode_impl="xla",
                                 attention_impl="grouped")
    for rec in throughput.run(cfg, hw, log=lambda _: None):
      records.append({"name": name, **{f: getattr(spec, f) for f in SHAPE}, **rec,
                      "measured_at": now})
      r = records[-1]
      print(f"{name:9s} batch {r['batch']:3d}: {r['output_tokens_per_s']:9.0f} output tok/s "
            f"(roofline {r['roofline_output_tokens_per_s']:9.0f})", flush=True)
      _write_json(path, records)  # each measurement kept as it arrives
  return records


def read_bench(root: str) -> list[dict]:
  """bench.json's records (every sitting), or [] before the first."""
  path = os.path.join(root, "bench.json")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)


def measured_rates(root: str, batch: int) -> dict[str, tuple[float, int]]:
  """Pick name -> (median output tokens/s at `batch` over the sittings, number of sittings);
  only measurements of the pick's current shape count."""
  specs = pick_specs(root)
  rates: dict[str, list[float]] = {}
  for r in read_bench(root):
    spec = specs.get(r["name"])
    if r["batch"] == batch and spec is not None and _shape(r) == _spec_shape(spec):
      rates.setdefault(r["name"], []).append(r["output_tokens_per_s"])
  return {name: (float(np.median(v)), len(v)) for name, v in rates.items()}


# -- report ------------------------------------------------------------------------------------------
def picks_table(df: pd.DataFrame, root: str, law: ConditionalLaw) -> pd.DataFrame:
  """Baseline, Panda and Surefire at the held-out scale (the committed search's picks): the law's
  predicted loss relative to L_opt and absolute (L_opt: the scale's lowest measured loss, the
  paper's empirical L_opt; NaN before any run of that scale has finished) and the
  roofline's tokens/s (once hardware.json exists), beside the trained runs' mean held-out loss
  over seeds (its spread, and each run's standard error) and the measured decode tokens/s at the
  serving batch (bench.json: the median over its sittings)."""
  from lawsearch import search as search_lib

  held = df[df["scale"] == CPU.heldout_scale]
  l_opt = float(held["loss"].min()) if len(held) else float("nan")
  specs = pick_specs(root)
  has_hw = os.path.exists(os.path.join(root, "hardware.json"))
  roofline = efficiency(root).many(list(specs.values())) if has_hw else [None] * len(specs)
  measured = measured_rates(root, SERVE["batch"])
  n_params = CPU.scale(CPU.heldout_scale)[0]
  relative = search_lib.predict_loss(law, list(specs.values()), CPU.tokens(n_params), None)
  rows = []
  for (name, spec), rate, rel in zip(specs.items(), roofline, relative):
    trained = held[[_shape(r) == _spec_shape(spec) for _, r in held.iterrows()]]
    rows.append({"pick": name, "d_model": spec.d_model, "ffn_dim": spec.ffn_dim,
                 "heads": f"{spec.n_heads}x{spec.n_kv_heads}", "gqa": spec.gqa,
                 "r": round(spec.mlp_attn_ratio, 3), "d/sqrtN": round(spec.d_over_sqrt_n, 4),
                 "predicted_rel": float(rel), "predicted_loss": float(rel) * l_opt,
                 "seeds": len(trained),
                 "loss": trained["loss"].mean() if len(trained) else None,
                 "loss_sd": trained["loss"].std() if len(trained) > 1 else None,
                 "loss_se": trained["loss_se"].mean() if len(trained) else None,
                 "roofline_tok_s": rate,
                 "measured_tok_s": measured[name][0] if name in measured else None,
                 "bench_sittings": measured[name][1] if name in measured else 0})
  return pd.DataFrame(rows)


def report(root: str) -> str:
  from lawsearch.report import fit_report
  from lawsearch.report.picks import picks_plot
  from lawsearch.report.table import markdown_table

  df = read_table(root)
  law = ConditionalLaw.from_json(os.path.join(root, "law_multiplicative.json"))
  out = os.path.join(root, "report")
  path = fit_report.write(law, validation_runs(df), out, l_opt="empirical")
  picks = picks_table(df, root, law)
  picks.to_csv(os.path.join(root, "picks.csv"), index=False, float_format="%.6g")
  held = df[df["scale"] == CPU.heldout_scale]
  picks_plot(picks, held, os.path.join(out, "picks.png"))
  lines = ["", f"## The picks at the held-out scale {CPU.heldout_scale}, trained", "",
           "The search (the multiplicative law, this CPU's roofline; ../search/search.json): "
           "Surefire is the most efficient candidate meeting the baseline's predicted loss, on "
           "the Pareto front; Algorithm 1's own pick is beside it in search.json. "
           "Measured tok/s: the median over bench.json's sittings.", "",
           "![pareto](../search/pareto.png)",
           "", markdown_table(picks.to_dict("records"), list(picks.columns)), "",
           "![picks](picks.png)", ""]
  try:
    shapes, check = heldout_check(df, law)
    shapes.to_csv(os.path.join(root, "heldout_check.csv"), index=False, float_format="%.6g")
    _write_json(os.path.join(root, "heldout_check.json"), check)
    b, c = check["measured_best"], check["law_best_trained"]
    lines += [f"## Does the law pick the best run at {CPU.heldout_scale}?", "",
              f"{check['shapes']} shapes trained there (seeds averaged); Spearman of predicted "
              f"against measured loss {check['spearman']:.2f}. Measured best: d {b['d_model']}, "
              f"f {b['ffn_dim']}, GQA {b['gqa']} ({b['role']}; d/sqrt(N) "
              f"{b['d_over_sqrt_n']:.3f}, r {b['mlp_attn_ratio']:.2f}), loss {b['loss']:.4f}. "
              f"The law's best of the trained shapes: d {c['d_model']}, f {c['ffn_dim']} "
              f"({c['role']}), measured rank {c['measured_rank']}, {c['gap_to_best']:+.4f} from "
              f"the best ({c['gap_in_paired_se']:.1f} paired standard errors of the held-out "
              f"sample; two seeds of one shape differ by up to {check['seed_spread']:.4f}). "
              "(heldout_check.csv, heldout_check.json)", "",
              markdown_table(shapes.to_dict("records"), list(shapes.columns)), ""]
  except ValueError as e:
    lines += [f"(no held-out check: {e})", ""]
  if os.path.exists(os.path.join(root, "validation.csv")):
    val = pd.read_csv(os.path.join(root, "validation.csv"))
    lines += ["## Validation beside the paper's", "",
              markdown_table(val.to_dict("records"), list(val.columns)), ""]
  if os.path.exists(os.path.join(root, "fit.json")):
    with open(os.path.join(root, "fit.json")) as f:
      fitted = json.load(f)
    def interval(bounds):
      return "" if bounds is None else f"[{bounds[0]:.3g}, {bounds[1]:.3g}]"

    forms = [{"form": form, "runs": e["n_points"], "mse": e["mse"],
              "d/sqrt(N)*": e["optimum"].get("d_over_sqrt_n"),
              "95%": interval(e["optimum"].get("d_over_sqrt_n_95")),
              "r*": e["optimum"].get("mlp_attn_ratio"),
              "95% ": interval(e["optimum"].get("mlp_attn_ratio_95")),
              "interior optimum": "error" not in e["optimum"]}
             for form, e in fitted["forms"].items()]
    lines += ["## The forms side by side (fit.json; 95% bootstrap intervals)", "",
              markdown_table(forms, list(forms[0])), "",
              "## Resolution: the law's smallest neighbouring difference against the errors", "",
              markdown_table(fitted["resolution"], list(fitted["resolution"][0])), ""]
  with open(path, "a") as f:
    f.write("\n".join(lines))
  print(f"wrote {path}")
  print(picks.to_string(index=False))
  return path




# -- downstream ------------------------------------------------------------------------------------
def downstream(root: str, every: bool = False) -> pd.DataFrame:
  """downstream.csv: the held-out scale's picks (`every`: all its runs) on the nine zero-shot
  tasks, scored with `lawsearch.downstream.evaluate` into each run's result.json (a run already
  scored on every task is not scored again): each task's headline accuracy beside its chance
  level, LAMBADA's perplexity, CoQA's bits per byte, the mean accuracy over the eight accuracy
  tasks with its standard error (from the tasks' own, items independent), and per role the mean
  over seeds. accuracy_law.json: mean accuracy against held-out loss
  (linear, 1000 bootstrap refits) over the scored runs, once there are three."""
  from lawsearch.downstream import evaluate as downstream_eval
  from lawsearch.downstream import tasks as downstream_tasks
  from lawsearch.laws import accuracy

  heldout = os.path.join(root, "heldout")
  roles = {_spec_shape(spec): name for name, spec in pick_specs(root).items()}
  df = runs.collect(heldout)
  df["role"] = [roles.get(_shape(r), "sweep") for _, r in df.iterrows()]
  for _, row in df.iterrows():
    if (every or row["role"] != "sweep") and not isinstance(row.get("downstream"), dict):
      print(f"scoring {os.path.basename(row['run_dir'])} ({row['role']})", flush=True)
      downstream_eval.evaluate(row["run_dir"], "all", progress=False)
  df = runs.collect(heldout)
  df["role"] = [roles.get(_shape(r), "sweep") for _, r in df.iterrows()]
  df = df[df["downstream"].apply(lambda d: isinstance(d, dict))]
  rows = []
  for _, r in df.sort_values(["role", "seed"]).iterrows():
    scores = r["downstream"]["tasks"]
    row = {"run": os.path.basename(r["run_dir"]), "role": r["role"], "seed": r["seed"],
           "d_model": r["d_model"], "ffn_dim": r["ffn_dim"],
           "heads": f"{r['n_heads']}x{r['n_kv_heads']}", "loss": r["loss"]}
    for task in (t for t in downstream_tasks.TASKS if t in scores):
      s = scores[task]
      if s["metric"]:
        row[f"{task} ({s['metric']})"] = s[s["metric"]]
        row[f"{task} chance"] = s["chance"]
    row["lambada perplexity"] = scores["lambada"]["perplexity"]
    row["coqa bits/byte"] = scores["coqa"]["bits_per_byte"]
    row["mean accuracy"], row["mean chance"] = r["acc_mean"], r["acc_mean_chance"]
    ses = [s[f"{s['metric']}_se"] for s in scores.values() if s["metric"]]
    row["mean accuracy se"] = math.sqrt(sum(se ** 2 for se in ses)) / len(ses)  # items independent
    row["items"] = "all" if not r["downstream"]["limit"] else r["downstream"]["limit"]
    rows.append(row)
  table = pd.DataFrame(rows)
  picks = table[table["role"] != "sweep"]  # the grid's shapes differ: no mean over them
  means = (picks.groupby("role", sort=False).mean(numeric_only=True).reset_index()
           .assign(run="mean over seeds", seed=np.nan))
  table = pd.concat([table, means[[c for c in table.columns if c in means]]], ignore_index=True)
  table.to_csv(os.path.join(root, "downstream.csv"), index=False, float_format="%.6g")
  print(table[["run", "role", "seed", "loss", "mean accuracy", "mean chance"]].to_string(
      index=False))
  by_role = means.set_index("role")["mean accuracy"]
  if "baseline" in by_role:
    print("mean accuracy against the baseline's (means over seeds): " + ", ".join(
        f"{role} {acc - by_role['baseline']:+.4f}" for role, acc in by_role.items()
        if role != "baseline"))
  scored = table[table["run"] != "mean over seeds"]
  if scored["loss"].nunique() >= 3:
    law = accuracy.fit(scored["loss"], scored["mean accuracy"], "linear",
                       chance=float(scored["mean chance"].mean()))
    law.to_json(os.path.join(root, "accuracy_law.json"))
    print(f"accuracy law: {law.describe()}")
  return table
