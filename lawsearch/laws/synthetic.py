"""Synthetic architecture sweeps drawn from a known conditional law (demos and recovery tests).

Each scale is a (nominal N, n_layers) pair of the paper recipe (head_dim 64, GQA 4: the paper's
< 1B setting); the architectures are the paper sweep's (`lawsearch.arch.sweep_grid` over the
recipe's grids of target d/sqrt(N) and r), so N, x and r are the real ones of buildable models.
Loss = law(x, r, L_opt) * (1 + noise * eps), eps ~ N(0, 1), with L_opt from a Chinchilla law at
the architecture's N and D = tokens_per_param * nominal N (the paper trains 100 N tokens per
scale).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lawsearch import arch
from lawsearch.laws.chinchilla import ChinchillaLaw
from lawsearch.laws.conditional import ConditionalLaw
from lawsearch.laws.precision import float64
from lawsearch.laws.runs_table import RunsTable
from lawsearch.recipe import PAPER


def synthetic_sweep(law: ConditionalLaw | None = None, scales=("80M", "145M", "297M"), *,
                    x_grid=PAPER.x_grid, r_grid=PAPER.r_grid, noise: float = 0.003, seed: int = 0,
                    chinchilla: ChinchillaLaw | None = None,
                    tokens_per_param: float = PAPER.tokens_per_param,
                    head_dim: int = PAPER.head_dim_small, gqa: int = PAPER.sweep_gqa,
                    seeds: int = 1, sparsity=()) -> pd.DataFrame:
  """A results table as a sweep would produce it, one row per buildable architecture and seed.

  Columns: scale, n_params (non-embedding), tokens, d_model, n_layers, n_heads, n_kv_heads,
  head_dim, ffn_dim, mlp_attn_ratio, d_over_sqrt_n, l_opt_true, loss. `law` defaults to the
  paper's 80M-297M law, `chinchilla` to the replication's fit. The true L_opt is given as
  `l_opt_true` (not `l_opt`), so fits default to the paper's empirical L_opt. With `seeds` > 1
  every architecture appears that many times (a `seed` column), each with its own relative noise
  of SD `noise`, as seeds of one shape would. `sparsity`: (experts, top-k, granularity) settings
  at which every architecture is also trained as a mixture of experts of the same active size
  (columns n_experts, top_k, expert_ffn_dim = ffn_dim / granularity; n_experts 0 for the dense
  rows, as run records write them); `law` then needs a MoE form.
  """
  law = ConditionalLaw.paper("80m-297m") if law is None else law
  chinchilla = ChinchillaLaw.epoch() if chinchilla is None else chinchilla
  rng = np.random.default_rng(seed)
  rows = []
  for name in scales:
    n_nominal, n_layers = PAPER.scale(name)
    for _, _, spec in arch.sweep_grid(n_nominal, n_layers=n_layers, head_dim=head_dim, gqa=gqa,
                                      x_grid=x_grid, r_grid=r_grid):
      rows.append(dict(scale=name, n_params=spec.non_embedding_params,
                       tokens=tokens_per_param * n_nominal, d_model=spec.d_model,
                       n_layers=spec.n_layers, n_heads=spec.n_heads,
                       n_kv_heads=spec.n_kv_heads, head_dim=spec.head_dim,
                       ffn_dim=spec.ffn_dim, mlp_attn_ratio=spec.mlp_attn_ratio,
                       d_over_sqrt_n=spec.d_over_sqrt_n))
  df = pd.DataFrame(rows).assign(n_experts=0, top_k=0, expert_ffn_dim=0)
  df = pd.concat([df] + [df.assign(n_experts=e, top_k=k, expert_ffn_dim=df["ffn_dim"] / g)
                         for e, k, g in sparsity], ignore_index=True)
  if seeds > 1:
    df = pd.concat([df.assign(seed=k) for k in range(seeds)], ignore_index=True)
  df["l_opt_true"] = chinchilla.predict(df["n_params"].to_numpy(float),
                                        df["tokens"].to_numpy(float))
  table = RunsTable(df)
  with float64():
    clean = np.asarray(law.predict_xr(df["d_over_sqrt_n"].to_numpy(float),
                                      df["mlp_attn_ratio"].to_numpy(float),
                                      df["l_opt_true"].to_numpy(float),
                                      table.sparsity, table.n), dtype=np.float64)
  df["loss"] = clean * (1.0 + noise * rng.standard_normal(len(df)))
  return df
