"""The paper's claims on lawsearch's own runs: a sweep's run directories -> the laws, their
cross-scale validation, Algorithm 1 at the held-out scale, and the picks measured against their
predictions. Written for the CPU replication (`recipe=cpu`, experiments/cpu_replication/), whose
results are committed under experiments/results/cpu_replication/; a root trained with another
recipe names it in root/recipe.json (`run.py --recipe`), and every stage follows it (its scales,
baseline, serving context, and on an accelerator its datasheet roofline and bfloat16 serving):

    table(root)   -> runs.csv      every finished run of root/fit and root/heldout, with its scale
                                   and role (sweep, baseline, panda, surefire)
    fit(root)     -> law_*.json, fit.json, validation.csv
    search(root)  -> search/       (and hardware.json: the chip, measured or its datasheet)
    bench(root)   -> bench.json    decode throughput of the picks against the roofline
    report(root)  -> picks.csv, report/report.md, heldout_check.csv/.json
    downstream(root) -> downstream.csv, accuracy_law.json

Each stage reads what the earlier ones wrote. The analysis steps the demo shows too (the fitting
and validation runs, the search at the held-out scale, the picks table, the serving scenario)
are `lawsearch.demo`'s; the paired standard errors and the held-out check `lawsearch.laws.
validation`'s. The package ships replication v2's runs.csv and hardware.json for `lawsearch demo`
(lawsearch/data/cpu_replication_v2/, refreshed by `table`; tests/test_demo.py keeps them equal).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil

import numpy as np
import pandas as pd

from lawsearch import arch, demo, laws, rundir, runs
from lawsearch.demo import SERVE
from lawsearch.errors import UserError
from lawsearch.laws import ConditionalLaw, validation as validation_lib
from lawsearch.laws.validation import SHAPE
from lawsearch.recipe import CPU, Recipe, recipe as named_recipe

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results",
                                    "cpu_replication"))
# joint: the separability check; decaying: a shape effect that shrinks with N (misfit.py)
FORMS = ("multiplicative", "additive", "joint", "decaying")
BENCH_BATCHES = (1, 8, 32)
CSV_FLOAT = "%.6g"  # the tables' float format


def _shape(row) -> tuple:
  """The shape of a runs-table row (or a dict of ArchSpec fields) as a tuple."""
  return tuple(int(row[f]) for f in SHAPE)


def _spec_shape(spec: arch.ArchSpec) -> tuple:
  return tuple(getattr(spec, f) for f in SHAPE)


def _write_json(path: str, obj) -> None:
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=1, default=float)
  os.replace(path + ".tmp", path)


def recipe_of(root: str) -> Recipe:
  """The recipe a replication root was trained with: root/recipe.json's, else the CPU recipe
  (the committed CPU replications predate the file; cpu_v2 keeps cpu's scales and baseline)."""
  path = os.path.join(root, "recipe.json")
  if not os.path.exists(path):
    return CPU
  with open(path) as f:
    return named_recipe(json.load(f)["recipe"])


def set_recipe(root: str, name: str) -> Recipe:
  """Records recipe `name` in root/recipe.json; refuses to change the recipe of a root that
  already names another (its runs would be read at the wrong scales)."""
  rec, recorded = named_recipe(name), recipe_of(root)
  path = os.path.join(root, "recipe.json")
  if os.path.exists(path) and recorded.name != rec.name:
    raise UserError(f"{root} was trained with recipe {recorded.name!r} ({path}); give "
                    f"--recipe {recorded.name} or another --root for recipe {name!r}")
  os.makedirs(root, exist_ok=True)
  _write_json(path, {"recipe": rec.name})
  return rec


def fitting_runs(df: pd.DataFrame, root: str) -> pd.DataFrame:
  """`demo.fitting_runs` at the fitting scales of root's recipe."""
  return demo.fitting_runs(df, recipe_of(root))


def pick_specs(root: str) -> dict[str, arch.ArchSpec]:
  """baseline, panda, surefire: the recipe's baseline and the search's picks (once searched)."""
  rec = recipe_of(root)
  specs = {"baseline": rec.baseline(rec.heldout_scale)}
  path = os.path.join(root, "search", "search.json")
  if os.path.exists(path):
    found = rundir.read_file(path, "search")["picks"]
    specs.update({k: arch.from_fields(found[k]) for k in ("panda", "surefire")})
  return specs


# -- table -----------------------------------------------------------------------------------------
def runs_table(root: str) -> pd.DataFrame:
  """One row per finished run of root/fit and root/heldout, with its scale and role (a part whose
  runs are all still training has no row yet)."""
  parts = [os.path.join(root, p) for p in ("fit", "heldout")]
  df = runs.collect(*(p for p in parts if os.path.isdir(p)))
  df["part"] = [os.path.basename(os.path.dirname(os.path.normpath(d))) for d in df["run_dir"]]
  rec = recipe_of(root)
  df["scale"] = [rec.scale_of(n) for n in df["n_params"]]
  df["gqa"] = df["n_heads"] // df["n_kv_heads"]
  roles = {_spec_shape(spec): name for name, spec in pick_specs(root).items()}
  df["role"] = [roles.get(_shape(r), "sweep") if r["part"] == "heldout" else "sweep"
                for _, r in df.iterrows()]
  df["run"] = [os.path.basename(p) for p in df["run_dir"]]
  df["paired_se"] = validation_lib.paired_standard_errors(df)
  columns = ["run", "part", "scale", "role", "seed", *SHAPE, "gqa", "vocab_size", "n_params",
             "total_params", "tokens", "d_over_sqrt_n", "mlp_attn_ratio", "loss", "loss_se",
             "paired_se", "train_loss", "tokens_per_s", "steps"]
  columns += [c for c in ("peak_lr", "batch_size") if c in df]  # records since the noise work
  return df[columns].sort_values(["part", "n_params", "d_model", "ffn_dim", "seed"])


def table(root: str) -> pd.DataFrame:
  """runs.csv: `runs_table`. For the replication the package ships (`demo.SHIPPED`, committed
  under REPO/experiments/results/), runs.csv and hardware.json are copied to the package too."""
  df = runs_table(root)
  df.to_csv(os.path.join(root, "runs.csv"), index=False, float_format=CSV_FLOAT)
  shipped = os.path.join(root, "..", "..", "..", "lawsearch", "data", demo.SHIPPED)
  if os.path.basename(os.path.normpath(root)) == demo.SHIPPED and os.path.isdir(shipped):
    for name in ("runs.csv", "hardware.json"):
      if os.path.exists(os.path.join(root, name)):
        shutil.copyfile(os.path.join(root, name), os.path.join(shipped, name))
  print(f"runs.csv: {len(df)} runs ({', '.join(f'{k} {v}' for k, v in df['scale'].value_counts().sort_index().items())})")
  return df


def resolution(df: pd.DataFrame, law: ConditionalLaw, rec: Recipe = CPU) -> pd.DataFrame:
  """Per fitting scale: the smallest loss difference the law predicts between neighbouring grid
  points (along the x sweep at fixed r and the r sweep at fixed d_model, as measured) against the
  median standard errors of a run's loss and of a paired difference; the issue's bar is an
  error at most a quarter of that difference."""
  rows = []
  fitting = demo.fitting_runs(df, rec)
  l_opt = laws.l_opt.for_table(fitting, "empirical")
  predicted = np.asarray(law.predict_xr(fitting["d_over_sqrt_n"], fitting["mlp_attn_ratio"],
                                        l_opt))
  for scale, group in fitting.groupby("scale", sort=False):
    pred = pd.Series(predicted[group.index], index=group.index)
    cross_d = group["d_model"].value_counts().idxmax()  # the r sweep's d_model
    r_sweep = group[group["d_model"] == cross_d].sort_values("mlp_attn_ratio").index
    x_sweep = group[(group["mlp_attn_ratio"] - rec.cross_r).abs() < 0.25].sort_values(
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


# -- fit ---------------------------------------------------------------------------------------------
def fit_law(df: pd.DataFrame, form: str, n_boot: int = 0, r_range=laws.DEFAULT_R_RANGE,
            l_opt: str = "empirical",
            rec: Recipe = CPU) -> tuple[ConditionalLaw, dict, list[str]]:
  """The law on the table's fitting scales (`rec`'s; L_opt: "empirical", the paper's, or "joint";
  r in `r_range`: the paper's [0.5, 5]; None = every run), a summary (coefficients, MSE, the
  optimum with 95% bootstrap intervals from `n_boot` refits, 0 = none, the seed noise and the
  residual trends) and the noise's lines to print."""
  fitted = demo.fit_law(df, form, l_opt=l_opt, r_range=r_range, n_boot=n_boot, rec=rec)
  summary = fitted.to_dict()
  summary.pop("validation_error")  # the replication validates across every scale (fit())
  return fitted.law, summary, fitted.noise_lines()


def _interval(optimum: dict, key: str, digits: int) -> str:
  """A bootstrap interval as "[low, high]" ("" without a bootstrap)."""
  low_high = optimum.get(key)
  return f"[{low_high[0]:.{digits}f}, {low_high[1]:.{digits}f}]" if low_high else ""


def fit(root: str, n_boot: int = 1000, l_opt: str = "empirical") -> dict:
  """Both forms on runs.csv: law_<form>.json, fit.json (summaries) and validation.csv."""
  df, rec = read_table(root), recipe_of(root)
  out = {"n_runs": len(fitting_runs(df, root)), "scales": list(rec.fit_scales), "l_opt": l_opt,
         "forms": {}}
  validations = []
  for form in FORMS:
    if laws.FORMS[form].sized and l_opt == "empirical":  # refused: ConditionalLaw.fit says why
      continue
    law, summary, _ = fit_law(df, form, n_boot, l_opt=l_opt, rec=rec)
    law.to_json(os.path.join(root, f"law_{form}.json"))
    out["forms"][form] = summary
    if form == "multiplicative":
      out["resolution"] = resolution(df, law, rec).to_dict("records")
    opt = summary["optimum"]
    print(f"{form}: {summary['n_points']} runs, MSE {summary['mse']:.3g}; optimum "
          + (f"d/sqrt(N) {opt['d_over_sqrt_n']:.3f} {_interval(opt, 'd_over_sqrt_n_95', 3)}, "
             f"r {opt['mlp_attn_ratio']:.2f} {_interval(opt, 'mlp_attn_ratio_95', 2)}"
             if "error" not in opt else opt["error"]))
    try:
      validations.append(demo.cross_scale_validation(df, form, l_opt, rec=rec))
    except ValueError as e:  # fewer than two scales, or too few runs at the smallest
      summary["validation_error"] = str(e)
  # The paper's filter drops r outside [0.5, 5]; the same law on every run shows what it hides.
  _, out["forms"]["multiplicative, every r"], _ = fit_law(df, "multiplicative", 0, r_range=None,
                                                         l_opt=l_opt, rec=rec)
  if validations:
    val = pd.concat(validations, ignore_index=True)
    val.to_csv(os.path.join(root, "validation.csv"), index=False, float_format=CSV_FLOAT)
    print(val.to_string(index=False))
    out["validation"] = val.to_dict("records")
  _write_json(os.path.join(root, "fit.json"), out)
  return out


def heldout_check(df: pd.DataFrame, law: ConditionalLaw,
                  rec: Recipe = CPU) -> tuple[pd.DataFrame, dict]:
  """`laws.validation.heldout_check` at the recipe's held-out scale."""
  return validation_lib.heldout_check(df, law, rec.heldout_scale)


# -- search ------------------------------------------------------------------------------------------
def measured_hardware(root: str):
  """The chip the replication serves on as a cost.Hardware: root/hardware.json, written there on
  first use, so searches and benchmarks share one measurement. On a CPU (both cores) its measured
  peak and bandwidth (lawsearch.bench.host.measure), serving in float32; on an accelerator in
  lawsearch.cost.HARDWARE its datasheet entry, serving in bfloat16 (a chip not in the table is
  measured too)."""
  path = os.path.join(root, "hardware.json")
  if not os.path.exists(path):
    import jax

    from lawsearch.bench import host, throughput

    cpu = jax.default_backend() == "cpu"
    listed = None if cpu else throughput.detect_hardware()
    hw = listed or host.measure("cpu-2core (measured)" if cpu else None)
    os.makedirs(root, exist_ok=True)
    _write_json(path, {"name": hw.name, "peak_flops": hw.peak_flops,
                       "hbm_bandwidth": hw.hbm_bandwidth, "hbm_bytes": hw.hbm_bytes,
                       "measured_by": "lawsearch.cost.HARDWARE (datasheet)" if listed
                       else "lawsearch.bench.host.measure",
                       "serving_dtype": "float32" if cpu else "bfloat16"})
  return demo.read_hardware(path)


def serving_dtype(root: str) -> str:
  """hardware.json's serving dtype: float32 on a CPU, bfloat16 on an accelerator (float32 where
  it does not say: the CPU replications predate the key)."""
  measured_hardware(root)
  with open(os.path.join(root, "hardware.json")) as f:
    return json.load(f).get("serving_dtype", "float32")


def serving(root: str) -> dict:
  """The search's serving scenario: the paper's 4096 in / 1024 out at a 2048-token training
  context scaled to the recipe's (demo.SERVE on the CPU recipes), in `serving_dtype`."""
  seq_len = recipe_of(root).seq_len
  return dict(SERVE, input_len=2 * seq_len, output_len=seq_len // 2,
              bytes_per_element=4 if serving_dtype(root) == "float32" else 2)


def efficiency(root: str):
  """The search's measure: the roofline of the replication's chip in its serving scenario."""
  from lawsearch import search as search_lib

  return search_lib.RooflineEfficiency(measured_hardware(root), **serving(root))


def search(root: str):
  """run_search with the committed multiplicative law; writes root/search/."""
  from lawsearch.report import search_report

  law = ConditionalLaw.from_json(os.path.join(root, "law_multiplicative.json"))
  result = demo.run_search(law, read_table(root), efficiency(root), recipe_of(root))
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
    measured = throughput.measure({name: spec}, hw, **bench_settings(root, trials))
    for rec in measured.records:
      records.append({**rec, "measured_at": now})
      r = records[-1]
      print(f"{name:9s} batch {r['batch']:3d}: {r['output_tokens_per_s']:9.0f} output tok/s "
            f"(roofline {r['roofline_output_tokens_per_s']:9.0f})", flush=True)
      _write_json(path, records)  # each measurement kept as it arrives
  return records


def bench_settings(root: str, trials: int) -> dict:
  """`throughput.measure`'s settings of the scaled protocol (`serving`'s lengths): on a CPU
  float32, XLA decode and grouped prefill attention; on an accelerator bfloat16, the Pallas decode
  kernel and the backend's prefill attention."""
  serve, dtype = serving(root), serving_dtype(root)
  cpu = dtype == "float32"
  return dict(batch_sizes=BENCH_BATCHES, input_len=serve["input_len"],
              output_len=serve["output_len"], trials=trials, dtype=dtype,
              decode_impl="xla" if cpu else "pallas", attention_impl="grouped" if cpu else "auto")


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
  """`lawsearch.demo.picks_table` of baseline, Panda and Surefire (the committed search's picks),
  with the chip's roofline once hardware.json exists, and the measured decode tokens/s at the
  serving batch (bench.json: the median over its sittings) and the number of sittings."""
  has_hw = os.path.exists(os.path.join(root, "hardware.json"))
  picks = demo.picks_table(pick_specs(root), df, law, efficiency(root) if has_hw else None,
                           recipe_of(root))
  measured = measured_rates(root, SERVE["batch"])
  return picks.assign(
      measured_tok_s=[measured[n][0] if n in measured else None for n in picks["pick"]],
      bench_sittings=[measured[n][1] if n in measured else 0 for n in picks["pick"]])


def report(root: str) -> str:
  from lawsearch.report import fit_report
  from lawsearch.table import markdown_table
  from picks_plot import picks_plot  # this directory's, as its scripts import it

  df, rec = read_table(root), recipe_of(root)
  law = ConditionalLaw.from_json(os.path.join(root, "law_multiplicative.json"))
  out = os.path.join(root, "report")
  path = fit_report.write(law, demo.validation_runs(df, rec), out, l_opt="empirical")
  picks = picks_table(df, root, law)
  picks.to_csv(os.path.join(root, "picks.csv"), index=False, float_format=CSV_FLOAT)
  held = df[df["scale"] == rec.heldout_scale]
  picks_plot(picks, held, os.path.join(out, "picks.png"))
  lines = ["", f"## The picks at the held-out scale {rec.heldout_scale}, trained", "",
           "The search (the multiplicative law, the roofline of ../hardware.json's chip; "
           "../search/search.json): "
           "Surefire is the most efficient candidate meeting the baseline's predicted loss, on "
           "the Pareto front; Algorithm 1's own pick is beside it in search.json. "
           "Measured tok/s: the median over bench.json's sittings.", "",
           "![pareto](../search/pareto.png)",
           "", markdown_table(picks.to_dict("records"), list(picks.columns)), "",
           "![picks](picks.png)", ""]
  try:
    shapes, check = heldout_check(df, law, rec)
    shapes.to_csv(os.path.join(root, "heldout_check.csv"), index=False, float_format=CSV_FLOAT)
    _write_json(os.path.join(root, "heldout_check.json"), check)
    b, c = check["measured_best"], check["law_best_trained"]
    lines += [f"## Does the law pick the best run at {rec.heldout_scale}?", "",
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
  table.to_csv(os.path.join(root, "downstream.csv"), index=False, float_format=CSV_FLOAT)
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
