"""`lawsearch demo`: the whole flow on embedded defaults, in about a minute on a laptop CPU.

1. The paper's seven architectures: parameter arithmetic and roofline serving throughput.
2. The conditional law, fitted with jaxopt on the CPU replication's runs: models lawsearch trained
   itself at 80k, 145k and 297k non-embedding parameters (`recipe=cpu`, committed under
   experiments/results/cpu_replication/runs.csv), with its cross-scale validation up to the
   held-out 600k scale, beside the paper's optimum and validation figures.
3. Algorithm 1 at 600k with that law, against the LLaMA-3.2-shaped baseline's predicted loss on
   this CPU's measured roofline: Panda, Surefire, the Pareto front, and next to them what the
   trained picks measured (held-out loss over seeds, decode tokens/s), written out as a plot and
   as configs to train the picks.
`--synthetic` (and any run without the replication's table, e.g. an installed package outside a
checkout) runs steps 2-3 instead on a SYNTHETIC sweep at 80M, 145M, 297M drawn from the paper's
published law with noise, and searches at 1B against LLaMA-3.2-1B.
"""

from __future__ import annotations

import os
import time

from lawsearch import arch, cost
from lawsearch.report.table import format_table

PAPER_MODELS = ("llama3.2-1b", "panda-1b", "surefire-1b", "llama3.2-3b", "panda-3b",
                "surefire-3b", "panda-3b-o")


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
  """The demo; `results`: the replication's directory (default: the checkout's committed one)."""
  from lawsearch import replication

  _step(f"1/3 The paper's models on {hardware} (roofline, batch {batch}, 4096 in / 1024 out)")
  print(paper_models_table(hardware, batch))
  results = results or replication.ROOT
  table = os.path.join(results, "runs.csv")
  if synthetic:
    synthetic_demo(out_dir, hardware, batch)
  elif not os.path.exists(table):
    print(f"\n(no {table}: this is not a lawsearch checkout with the CPU replication's results; "
          "running the SYNTHETIC demo instead)")
    synthetic_demo(out_dir, hardware, batch)
  else:
    replication_demo(results, out_dir)


def _paper_optimum() -> str:
  from lawsearch.laws import ConditionalLaw

  x_star, r_star = ConditionalLaw.paper("80m-297m").optimum()
  return f"{x_star:.3f}, {r_star:.3f}"


def replication_demo(results: str, out_dir: str) -> None:
  """Steps 2-3 on the replication's committed runs table."""
  from lawsearch import replication
  from lawsearch.report import fit_plots, search_report

  df = replication.read_table(results)
  fitting = replication.fitting_runs(df)
  t = _step(f"2/3 Fit the conditional law on {len(fitting)} runs lawsearch trained itself "
            f"({', '.join(replication.CPU.fit_scales)} non-embedding parameters, 4 layers, "
            f"D = 20 N; {results}/runs.csv)")
  law, summary, noise_lines = replication.fit_law(df, "multiplicative")
  opt = summary["optimum"]
  print(f"multiplicative law on {summary['n_points']} shapes (r in [0.5, 5]): MSE "
        f"{summary['mse']:.3g}")
  print("\n".join(noise_lines))
  if "error" in opt:
    print(f"{opt['error'].split(':')[0]} (the paper's 80M-297M law: {_paper_optimum()}); the "
          "search takes the lowest predicted loss on its grid as Panda")
  else:
    print(f"optimum d/sqrt(N), r: {opt['d_over_sqrt_n']:.3f}, {opt['mlp_attn_ratio']:.3f} "
          f"(the paper's 80M-297M law: {_paper_optimum()}; the runs span d/sqrt(N) "
          f"{fitting['d_over_sqrt_n'].min():.3f}-{fitting['d_over_sqrt_n'].max():.3f} and r "
          f"{fitting['mlp_attn_ratio'].min():.2f}-{fitting['mlp_attn_ratio'].max():.2f}; "
          f"bootstrap intervals in {results}/fit.json)")
  plot_runs = replication.validation_runs(df)
  print(f"plots: {', '.join(fit_plots.save(law, plot_runs, out_dir, l_opt='empirical'))}")
  try:
    val = replication.validation(df, "multiplicative")
    print(format_table(val.to_dict("records"), ["task", "n_train", "n_test", "mse", "spearman",
                                                "paper_mse", "paper_spearman"]))
  except ValueError as e:
    print(f"validation skipped: {e}")
  print(f"({time.perf_counter() - t:.1f} s)")

  scale = replication.CPU.heldout_scale
  t = _step(f"3/3 Search at {scale} (4 layers, head_dim 16) for the LLaMA-3.2-shaped baseline's "
            "predicted loss")
  hw_root = results if os.path.exists(os.path.join(results, "hardware.json")) else out_dir
  result = replication.run_search(law, df, replication.efficiency(hw_root))
  print(search_report.summary(result))
  search_report.save(result, out_dir)
  print(f"wrote pareto.png, search.json and each pick's configs under {out_dir}/")
  picks = replication.picks_table(df, results, law)
  print(f"\nthe committed search's picks at {scale}, predicted by this law and as trained "
        f"(loss over seeds; decode tokens/s at batch {replication.SERVE['batch']}):")
  print(format_table(picks.to_dict("records"), list(picks.columns)))
  if not picks["seeds"].any():
    print("(not trained yet: experiments/cpu_replication/train_all.sh trains them)")
  try:
    _, check = replication.heldout_check(df, law)
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
  from lawsearch import search
  from lawsearch.laws import ConditionalLaw
  from lawsearch.laws.synthetic import synthetic_sweep
  from lawsearch.laws.validation import cross_scale_validation
  from lawsearch.report import fit_plots, search_report

  t = _step("2/3 Fit the conditional law on a SYNTHETIC sweep at 80M, 145M, 297M "
            "(the paper's law + 0.3% noise)")
  sweep = synthetic_sweep(scales=("80M", "145M", "297M"), seed=0)
  law = ConditionalLaw.fit(sweep, "multiplicative")
  true_law = ConditionalLaw.paper("80m-297m")
  print(f"{len(sweep)} runs; fitted {law.fit_info.n_points} (r in [0.5, 5]); "
        f"MSE {law.fit_info.mse:.3g}")
  print(f"optimum d/sqrt(N), r: fitted {law.optimum()[0]:.4f}, {law.optimum()[1]:.3f}; "
        f"true {true_law.optimum()[0]:.4f}, {true_law.optimum()[1]:.3f}")
  print(f"plots: {', '.join(fit_plots.save(law, sweep, out_dir))}")
  validation = cross_scale_validation(sweep)
  print(format_table(validation.to_dict("records"), ["task", "n_train", "n_test", "mse",
                                                     "spearman", "x_star", "r_star"]))
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
