"""`lawsearch demo`: the whole flow on data shipped with the package, in about a minute on a CPU.

1. The paper's seven architectures: parameter arithmetic and roofline serving throughput.
2. The conditional law, fitted with jaxopt on CPU replication v2's runs: models lawsearch trained
   itself at 80k, 145k and 297k non-embedding parameters, three seeds each (`recipe=cpu_v2`), with
   L_opt per scale fitted jointly with the law, its seed noise and lack-of-fit test, the decaying
   form beside it (the term the paper's law misses here), and their cross-scale validation up to
   the held-out 600k scale, beside the paper's optimum and figures.
3. Algorithm 1 at 600k with that law, against the LLaMA-3.2-shaped baseline's predicted loss on
   the replication CPU's measured roofline: Panda, Surefire, the Pareto front, and next to them
   what the trained picks measured (held-out loss over seeds) and whether the law picks the best
   run trained at 600k, written out as a plot and as configs to train the picks.
`--synthetic` (and a `results` directory without runs.csv) runs steps 2-3 instead on a SYNTHETIC
sweep at 80M, 145M, 297M drawn from the paper's published law with noise, and searches at 1B
against LLaMA-3.2-1B.

RESULTS, shipped with the package, holds replication v2's runs.csv (one row per finished run:
shape, N, D, seed, scale, role, held-out loss) and hardware.json (the CPU it ran on, measured), as
experiments/results/cpu_replication_v2/ does (its table stage refreshes the copy; tests/test_demo.py
keeps them equal). The replications themselves (experiments/cpu_replication/replication.py, v1 and
v2) take their analysis steps from here: `fitting_runs`, `fit_law`, `validation_runs`,
`cross_scale_validation`, `run_search`, `picks_table`, `SERVE`.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import os
import time

import pandas as pd

from lawsearch import arch, cost, laws, search
from lawsearch.laws import ConditionalLaw, validation
from lawsearch.laws.validation import SHAPE
from lawsearch.recipe import CPU, Recipe  # recipe cpu_v2 keeps CPU's scales, tokens and baseline
from lawsearch.table import format_table

PAPER_MODELS = ("llama3.2-1b", "panda-1b", "surefire-1b", "llama3.2-3b", "panda-3b",
                "surefire-3b", "panda-3b-o")
SHIPPED = "cpu_replication_v2"  # the replication whose runs the package ships
RESULTS = str(importlib.resources.files("lawsearch.data") / SHIPPED)
L_OPT = "joint"  # replication v2's L_opt: one level per scale fitted with the law
# Serving scenario: the paper's 4096 in / 1024 out at a 2048-token training context, scaled to
# the recipe's 128 (1/16); float32 weights and KV cache, as the CPU runs them.
SERVE = dict(batch=32, input_len=256, output_len=64, bytes_per_element=4)


def _step(title: str) -> float:
  print(f"\n== {title}", flush=True)
  return time.perf_counter()


def paper_models_table(hardware: str, batch: int) -> str:
  hw = cost.hardware(hardware)
  rows = []
  for name in PAPER_MODELS:
    s = arch.preset(name)
    t = cost.roofline_throughput(s, hw, batch)
    rows.append({"model": name, "d": s.d_model, "f": s.ffn_dim, "L": s.n_layers,
                 "heads": s.n_heads, "kv": s.n_kv_heads, "gqa": s.gqa,
                 "N(M)": s.non_embedding_params / 1e6, "r": s.mlp_attn_ratio,
                 "d/sqrtN": s.d_over_sqrt_n, "KV KiB/tok": cost.kv_cache_bytes_per_token(s) / 1024,
                 "tok/s": t.output_tokens_per_s if t.fits else f"OOM>{t.max_batch}"})
  return format_table(rows, list(rows[0]))


def run(out_dir: str = "out/demo", hardware: str = "a100-40gb", batch: int = 64,
        synthetic: bool = False, results: str | None = None) -> None:
  """The demo; `results`: a replication's directory (runs.csv, hardware.json; default RESULTS,
  the copy shipped with the package)."""
  _step(f"1/3 The paper's models on {hardware} (roofline, batch {batch}, 4096 in / 1024 out)")
  print(paper_models_table(hardware, batch))
  results = results or RESULTS
  table = os.path.join(results, "runs.csv")
  if synthetic:
    synthetic_demo(out_dir, hardware, batch)
  elif not os.path.exists(table):
    print(f"\n(no {table}: running the SYNTHETIC demo instead)")
    synthetic_demo(out_dir, hardware, batch)
  else:
    replication_demo(results, out_dir)


# -- the replication's analysis steps --------------------------------------------------------------
def read_hardware(path: str) -> cost.Hardware:
  """A measured chip as hardware.json records it (name, peak_flops, hbm_bandwidth, hbm_bytes)."""
  with open(path) as f:
    rec = json.load(f)
  return cost.Hardware(rec["name"], rec["peak_flops"], rec["hbm_bandwidth"], rec["hbm_bytes"])


def fitting_runs(df: pd.DataFrame, rec: Recipe = CPU) -> pd.DataFrame:
  """The runs table's rows at the recipe's fitting scales (its `scale` column)."""
  return df[df["scale"].isin(rec.fit_scales)].reset_index(drop=True)


def validation_runs(df: pd.DataFrame, rec: Recipe = CPU) -> pd.DataFrame:
  """The fitting runs and every run at the held-out scale, seeds included (`laws.fit_runs`
  averages them per shape, and measures the held-out scale's seed noise from them)."""
  return pd.concat([fitting_runs(df, rec), df[df["scale"] == rec.heldout_scale]],
                   ignore_index=True)


def fit_law(df: pd.DataFrame, form: str = "multiplicative", l_opt: str = L_OPT,
            r_range=laws.DEFAULT_R_RANGE, n_boot: int = 0, rec: Recipe = CPU) -> laws.FitSummary:
  """`laws.fit_runs` on the fitting runs (L_opt: "joint", v2's, or "empirical", the paper's; r in
  `r_range`: the paper's [0.5, 5]; None = every run; `n_boot` bootstrap refits), validated
  across scales by the caller (`validation_runs`), not within the fitting runs."""
  return laws.fit_runs(fitting_runs(df, rec), form, l_opt=l_opt, r_range=r_range, n_boot=n_boot,
                       validate=False)


def cross_scale_validation(df: pd.DataFrame, form: str = "multiplicative", l_opt: str = L_OPT,
                           r_range=laws.DEFAULT_R_RANGE, rec: Recipe = CPU) -> pd.DataFrame:
  """The paper's progressive cross-scale validation over every scale of `validation_runs(df)`
  (the last task predicts the held-out scale), the paper's MSE and Spearman beside each task;
  the laws fitted on the runs with r in `r_range` (None: every r). l_opt "joint": every scale's
  level fitted with the law on the whole table (`laws.levels`). ValueError when fewer than two
  scales, or too few runs at the smallest, leave nothing to validate."""
  if l_opt == "joint":
    assessment = laws.fit_runs(validation_runs(df, rec), form, l_opt="joint",
                               r_range=r_range).assessment
    if assessment.validation is None:
      raise ValueError(assessment.validation_skipped)
    val = assessment.validation
  else:
    val = laws.cross_scale_validation(validation_runs(df, rec), form=form, l_opt=l_opt,
                                      r_range=r_range)
  val.insert(0, "form", form)
  return validation.beside_paper(val)


def run_search(law: ConditionalLaw, df: pd.DataFrame, measure,
               rec: Recipe = CPU) -> search.SearchResult:
  """Algorithm 1 at the held-out scale for the recipe's baseline's predicted loss (relative to
  L_opt), over candidates inside the region the law was fitted on: d/sqrt(N) within the fitting
  runs' range and r within the fit's r filter (the law is not trusted beyond them)."""
  fitted = fitting_runs(df, rec)
  n_params, n_layers = rec.scale(rec.heldout_scale)
  step, root_n = rec.d_step, math.sqrt(n_params)
  x_low, x_high = fitted["d_over_sqrt_n"].min(), fitted["d_over_sqrt_n"].max()
  d_models = list(range(step * math.ceil(x_low * root_n / step), int(x_high * root_n) + 1, step))
  return search.search(
      law, n_params, rec.tokens(n_params), n_layers, rec.head_dim(n_params),
      baseline=rec.baseline(rec.heldout_scale), efficiency=measure, d_models=d_models,
      gqas=(1, 2, 4, 8), ffn_step=rec.ffn_step, vocab_size=rec.model_vocab_size, max_gqa=16,
      r_range=law.fit_info.r_range if law.fit_info else None)


def picks_table(specs: dict[str, arch.ArchSpec], df: pd.DataFrame, law: ConditionalLaw,
                measure=None, rec: Recipe = CPU) -> pd.DataFrame:
  """Named shapes at the held-out scale (baseline and the search's picks): the law's predicted
  loss relative to L_opt and absolute (L_opt: the scale's lowest measured loss, the paper's
  empirical L_opt; NaN before any run of that scale has finished) and `measure`'s tokens/s (None
  without one), beside the trained runs' mean held-out loss over seeds (its spread, and each
  run's standard error)."""
  held = df[df["scale"] == rec.heldout_scale]
  l_opt = float(held["loss"].min()) if len(held) else float("nan")
  rates = measure.many(list(specs.values())) if measure is not None else [None] * len(specs)
  relative = search.predict_loss(law, list(specs.values()), rec.tokens(rec.scale(
      rec.heldout_scale)[0]), None)
  rows = []
  for (name, spec), rate, rel in zip(specs.items(), rates, relative):
    shape = tuple(getattr(spec, f) for f in SHAPE)
    trained = held[[tuple(int(r[f]) for f in SHAPE) == shape for _, r in held.iterrows()]]
    rows.append({"pick": name, "d_model": spec.d_model, "ffn_dim": spec.ffn_dim,
                 "heads": f"{spec.n_heads}x{spec.n_kv_heads}", "gqa": spec.gqa,
                 "r": round(spec.mlp_attn_ratio, 3), "d/sqrtN": round(spec.d_over_sqrt_n, 4),
                 "predicted_rel": float(rel), "predicted_loss": float(rel) * l_opt,
                 "seeds": len(trained),
                 "loss": trained["loss"].mean() if len(trained) else None,
                 "loss_sd": trained["loss"].std() if len(trained) > 1 else None,
                 "loss_se": trained["loss_se"].mean() if len(trained) else None,
                 "roofline_tok_s": rate})
  return pd.DataFrame(rows)


# -- the demo on the replication's runs ------------------------------------------------------------
def _paper_optimum() -> str:
  x_star, r_star = ConditionalLaw.paper("80m-297m").optimum()
  return f"{x_star:.3f}, {r_star:.3f}"


def replication_demo(results: str, out_dir: str) -> None:
  """Steps 2-3 on a replication's runs table (results/runs.csv) and the roofline of the CPU it
  ran on (results/hardware.json, else the shipped one)."""
  from lawsearch.report import fit_plots, search_report  # matplotlib

  df = pd.read_csv(os.path.join(results, "runs.csv"))
  fitting = fitting_runs(df)
  seeds = fitting.groupby(list(SHAPE)).size()
  t = _step(f"2/3 Fit the conditional law on {len(fitting)} runs lawsearch trained itself "
            f"({len(seeds)} shapes x {seeds.min()}-{seeds.max()} seeds at "
            f"{', '.join(CPU.fit_scales)} non-embedding parameters, 4 layers, D = 20 N; "
            f"{results}/runs.csv)")
  fitted = fit_law(df)
  law, summary = fitted.law, fitted.to_dict()
  opt = summary["optimum"]
  print(f"multiplicative law on {summary['n_points']} shapes (r in [0.5, 5]), L_opt per scale "
        f"fitted with it: MSE {summary['mse']:.3g}")
  print("\n".join(fitted.noise_lines()))
  decaying = fit_law(df, "decaying")
  lof = decaying.lack_of_fit
  if lof:
    print(f"the decaying form, whose shape effect shrinks as N^-gamma (`--form decaying`): gamma "
          f"{decaying.law.coefficients['gamma']:.2f}, MSE {decaying.law.fit_info.mse:.3g}, lack "
          f"of fit F = {lof.f:.2f} (p = {lof.p:.2g})")
  if "error" in opt:
    print(f"{opt['error'].split(':')[0]} (the paper's 80M-297M law: {_paper_optimum()}); the "
          "search takes the lowest predicted loss on its grid as Panda")
  else:
    print(f"optimum d/sqrt(N), r: {opt['d_over_sqrt_n']:.3f}, {opt['mlp_attn_ratio']:.3f} "
          f"(the paper's 80M-297M law: {_paper_optimum()}; the runs span d/sqrt(N) "
          f"{fitting['d_over_sqrt_n'].min():.3f}-{fitting['d_over_sqrt_n'].max():.3f} and r "
          f"{fitting['mlp_attn_ratio'].min():.2f}-{fitting['mlp_attn_ratio'].max():.2f}; "
          f"the replication's bootstrap intervals: experiments/results/{SHIPPED}/fit.json)")
  print(f"plots: {', '.join(fit_plots.save_fit(fitted, fitting, out_dir, l_opt=L_OPT))}")
  try:
    val = pd.concat([cross_scale_validation(df, form) for form in ("multiplicative", "decaying")],
                    ignore_index=True)
    print(format_table(val.to_dict("records"), ["form", "task", "n_train", "n_test", "mse",
                                                "spearman", "spearman_ceiling", "spearman_p",
                                                "paper_mse", "paper_spearman"]))
    print(validation.CEILING_NOTE)
  except ValueError as e:
    print(f"validation skipped: {e}")
  print(f"({time.perf_counter() - t:.1f} s)")

  scale = CPU.heldout_scale
  t = _step(f"3/3 Search at {scale} (4 layers, head_dim 16) for the LLaMA-3.2-shaped baseline's "
            "predicted loss")
  hw_path = os.path.join(results, "hardware.json")
  hw = read_hardware(hw_path if os.path.exists(hw_path) else os.path.join(RESULTS, "hardware.json"))
  measure = search.RooflineEfficiency(hw, **SERVE)
  result = run_search(law, df, measure)
  print(search_report.summary(result))
  search_report.save(result, out_dir)
  print(f"wrote pareto.png, search.json and each pick's configs under {out_dir}/")
  picks = picks_table({k: result.picks()[k] for k in ("baseline", "panda", "surefire")}, df,
                      law, measure)
  print(f"\nthe picks at {scale}, predicted by this law and as trained (loss over seeds; "
        f"roofline decode tokens/s at batch {SERVE['batch']}):")
  print(format_table(picks.to_dict("records"), list(picks.columns)))
  if not picks["seeds"].any():
    print(f"(not trained yet: experiments/{SHIPPED}/train_all.sh trains them)")
  try:
    _, check = validation.heldout_check(df, law, scale)
    b, c = check["measured_best"], check["law_best_trained"]
    print(f"\nat {scale}, {check['shapes']} shapes trained: the law ranks them with Spearman "
          f"{check['spearman']:.2f}; the measured best is d {b['d_model']}, f {b['ffn_dim']}, "
          f"GQA {b['gqa']} ({b['role']}, loss {b['loss']:.4f}); the law's best of them is d "
          f"{c['d_model']}, f {c['ffn_dim']} ({c['role']}), measured rank {c['measured_rank']}, "
          f"{c['gap_to_best']:.4f} from the best (two seeds of one shape differ by up to "
          f"{check['seed_spread']:.4f})")
  except ValueError as e:
    print(f"(no held-out check: {e})")
  print(f"({time.perf_counter() - t:.1f} s)")


def synthetic_demo(out_dir: str, hardware: str, batch: int) -> None:
  """Steps 2-3 on a SYNTHETIC sweep drawn from the paper's law, searching at 1B."""
  from lawsearch.report import fit_plots, search_report  # matplotlib

  t = _step("2/3 Fit the conditional law on a SYNTHETIC sweep at 80M, 145M, 297M "
            "(the paper's law + 0.3% noise)")
  sweep = laws.synthetic_sweep(scales=("80M", "145M", "297M"), seed=0)
  law = ConditionalLaw.fit(sweep, "multiplicative")
  true_law = ConditionalLaw.paper("80m-297m")
  print(f"{len(sweep)} runs; fitted {law.fit_info.n_points} (r in [0.5, 5]); "
        f"MSE {law.fit_info.mse:.3g}")
  print(f"optimum d/sqrt(N), r: fitted {law.optimum()[0]:.4f}, {law.optimum()[1]:.3f}; "
        f"true {true_law.optimum()[0]:.4f}, {true_law.optimum()[1]:.3f}")
  print(f"plots: {', '.join(fit_plots.save(law, sweep, out_dir))}")
  val = laws.cross_scale_validation(sweep)
  print(format_table(val.to_dict("records"), ["task", "n_train", "n_test", "mse", "spearman",
                                              "x_star", "r_star"]))
  print(f"({time.perf_counter() - t:.1f} s)")

  t = _step("3/3 Search at 1B (16 layers, head_dim 64) for LLaMA-3.2-1B's predicted loss")
  n_params = arch.preset("llama3.2-1b").non_embedding_params
  result = search.search(law, n_params, 100 * n_params, 16, 64, baseline="llama3.2-1b",
                         efficiency=search.RooflineEfficiency(hardware, batch))
  print(search_report.summary(result))
  spot = result.locate(arch.preset("surefire-1b"))
  print(f"the paper's Surefire-1B here: loss {spot['loss']:.5f} "
        f"({'meets' if spot['meets_target'] else 'misses'} the target), "
        f"{spot['efficiency']:.0f} tok/s = {spot['efficiency_vs_front']:.0%} of the front")
  written = search_report.save(result, out_dir, {"paper Surefire-1B": arch.preset("surefire-1b")})
  print(f"wrote {len(written)} files under {out_dir}/ (pareto.png, search.json, and for each pick "
        "NAME.config.py for `lawsearch train`, NAME.hf_config.json, NAME.maxtext.yml)")
  print(f"train the Surefire: lawsearch train --config={out_dir}/surefire.config.py:recipe=paper "
        "--workdir runs/surefire")
  print(f"({time.perf_counter() - t:.1f} s)")
