"""`lawsearch demo`: the whole flow on embedded defaults, in about a minute on a laptop CPU.

1. The paper's seven architectures: parameter arithmetic and roofline serving throughput.
2. A sweep of small models (80M, 145M, 297M) -> the conditional law, fitted with jaxopt, and its
   cross-scale validation. The sweep is synthetic (drawn from the paper's published law with
   noise), standing in for `lawsearch train` runs, which take GPU/TPU hours at these scales.
3. Algorithm 1 at the 1B scale with the fitted law: Panda, Surefire, the Pareto front against
   LLaMA-3.2-1B's predicted loss, written out as a plot and as configs to train the picks.
"""

from __future__ import annotations

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


def run(out_dir: str = "out/demo", hardware: str = "a100-40gb", batch: int = 64) -> None:
  from lawsearch import search
  from lawsearch.laws import ConditionalLaw
  from lawsearch.laws.synthetic import synthetic_sweep
  from lawsearch.laws.validation import cross_scale_validation
  from lawsearch.report import fit_plots, search_report

  t = _step(f"1/3 The paper's models on {hardware} (roofline, batch {batch}, 4096 in / 1024 out)")
  print(paper_models_table(hardware, batch))

  t = _step("2/3 Fit the conditional law on a sweep at 80M, 145M, 297M "
            "(synthetic: the paper's law + 0.3% noise)")
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
