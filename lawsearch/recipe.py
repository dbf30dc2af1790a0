"""Named training recipes: frozen, opinionated choices kept apart from the mechanics.

PAPER: the paper's setup (PAPER.md section 5). Stated by the paper: D = 100 * N training tokens,
head_dim 64 for N <= 1B and 128 above, depth fixed per scale. Our choices where it is silent
(see BUILD_NOTES.md): the peak learning rate per scale, interpolated log-linearly in N between
the anchors below (GPT-3 / Pythia-like values), 1% warmup, sequence length 2048, and the sweep:
the layer count of each scale below 1B and the grids of target d/sqrt(N) and r (GQA 4).
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Recipe:
  name: str
  tokens_per_param: float  # D / N (N = non-embedding parameters)
  head_dim_small: int  # head_dim for N <= head_dim_threshold
  head_dim_large: int
  head_dim_threshold: float
  lr_anchors: tuple[tuple[float, float], ...]  # (N, peak learning rate), N increasing
  warmup_fraction: float
  seq_len: int
  scales: tuple[tuple[str, float, int], ...] = ()  # sweep scales: (name, nominal N, n_layers)
  x_grid: tuple[float, ...] = ()  # sweep targets of d/sqrt(N)
  r_grid: tuple[float, ...] = ()  # sweep targets of the MLP-to-attention ratio
  sweep_gqa: int = 4

  def scale(self, name: str) -> tuple[float, int]:
    """(nominal N, n_layers) of a named sweep scale."""
    for scale, n_params, n_layers in self.scales:
      if scale == name:
        return n_params, n_layers
    raise ValueError(f"unknown scale {name!r} in recipe {self.name!r}; known: "
                     f"{', '.join(s for s, _, _ in self.scales)}")

  def tokens(self, n_params: float) -> int:
    return int(round(self.tokens_per_param * n_params))

  def head_dim(self, n_params: float) -> int:
    return self.head_dim_small if n_params <= self.head_dim_threshold else self.head_dim_large

  def peak_lr(self, n_params: float) -> float:
    """Log-linear interpolation of the anchors in log N (constant beyond the ends)."""
    ns, lrs = zip(*self.lr_anchors)
    x = min(max(math.log(n_params), math.log(ns[0])), math.log(ns[-1]))
    for (n0, l0), (n1, l1) in zip(self.lr_anchors, self.lr_anchors[1:]):
      if x <= math.log(n1):
        t = (x - math.log(n0)) / (math.log(n1) - math.log(n0))
        return math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0)))
    return lrs[-1]


PAPER = Recipe(
    name="paper", tokens_per_param=100.0, head_dim_small=64, head_dim_large=128,
    head_dim_threshold=1.5e9,  # the paper's 1B models use 64, its 3B models 128
    lr_anchors=((80e6, 3e-3), (145e6, 2.5e-3), (297e6, 2e-3), (1e9, 1e-3), (3e9, 6e-4)),
    warmup_fraction=0.01, seq_len=2048,
    scales=(("80M", 80e6, 12), ("145M", 145e6, 14), ("297M", 297e6, 18), ("1B", 1e9, 16)),
    x_grid=(0.04, 0.05, 0.065, 0.08, 0.1, 0.125, 0.16),
    r_grid=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0))

RECIPES = {"paper": PAPER}


def recipe(name: str) -> Recipe:
  try:
    return RECIPES[name]
  except KeyError:
    raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
