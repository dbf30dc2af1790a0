"""Named training recipes: frozen, opinionated choices kept apart from the mechanics.

PAPER: the paper's setup (PAPER.md section 5). Stated by the paper: D = 100 * N training tokens,
head_dim 64 for N <= 1B and 128 above, depth fixed per scale. Our choices where it is silent
(see BUILD_NOTES.md): the peak learning rate per scale, interpolated log-linearly in N between
the anchors below (GPT-3 / Pythia-like values), 1% warmup, sequence length 2048, and the sweep:
the layer count of each scale below 1B and the grids of target d/sqrt(N) and r (GQA 4).

CPU: the paper's design in miniature, sized so that the whole replication (three fitting scales,
a held-out scale, the trained picks) fits in about 3 hours of a 2-core CPU. The fitting scales
are the paper's 80M / 145M / 297M divided by 1000, the held-out scale 600k (the paper's was 1B):
- 4 layers at every scale, head_dim 16: deeper or with narrower heads, the many small matmuls of
  a tiny model run far below the CPU's matmul rate (head_dim 8 halves tokens/s).
- A 512-token byte-level BPE (the default corpus's, trained here): the tied embedding (512 * d)
  stays at 5-50% of N over the grid, and its output matmul at a similar share of the FLOPs; a
  4,096 vocabulary would outweigh N itself at these widths.
- Sequence length 128: attention's T x d_q work per token stays under about a third of the
  6 N matmul work over the grid (the paper's 2048 against N ~ 1e8 sits in the same range).
- D = 20 N (Chinchilla's compute-optimal budget; the paper's 100 N would need 60 M tokens at
  600k, four times the corpus), batch 32 x 128, 5% warmup, one LR rule (below) for all shapes.
- GQA 1 (multi-head) in the sweep: at these widths the head count is small, and GQA 2 or 4
  would leave only three or four reachable r per d_model; the law has no GQA term (the paper's
  assumption), and the search's GQA step and the GQA 4 baseline are trained at the held-out
  scale. d_model moves in steps of 8, ffn_dim in steps of 8, and a shape's r may miss its target
  by 20% (the law is fitted on each run's own r and d/sqrt(N)).
- The sweep is the paper's "cross": a hidden-size sweep at fixed r and an r sweep at fixed
  d_model, which meet at one shape.
- Held-out loss on the whole held-out split (5% of the corpus's 4,096-token blocks, spread over
  every source: about 0.8 M tokens), with its block-bootstrap standard error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from lawsearch import arch
from lawsearch.errors import UserError

# The CPU recipe's peak learning rate (AdamW, batch 32 x 128): 3e-3 at 145k, the best of a scan
# of 1.5e-3, 3e-3 and 6e-3 there (experiments/RESULTS.md, "CPU replication"), scaled as N^-1/4
# over the recipe's scales (a guess: the scan was at one scale).
_LR_CPU_145K = 3e-3


def _lr_cpu(n_params: float) -> tuple[float, float]:
  return n_params, _LR_CPU_145K * (n_params / 1.45e5) ** -0.25


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
  # The sweep's design: "grid" (every x with every r) or "cross" (x_grid at r = cross_r, and r_grid
  # at the d_model of x = cross_x: the paper's hidden-size sweep at fixed r and r sweep at fixed d)
  sweep_design: str = "grid"
  cross_x: float = 0.0
  cross_r: float = 0.0
  # The baseline the search is asked to beat, LLaMA-3.2-1B's shape at any scale: its d/sqrt(N),
  # its MLP-to-attention ratio and its GQA (PAPER.md, table 1)
  baseline_x: float = 0.066
  baseline_r: float = 4.8
  baseline_gqa: int = 4
  fit_scales: tuple[str, ...] = ()  # the scales a sweep trains by default (and the law is fit on)
  heldout_scale: str = ""  # the larger scale the law is validated on and the picks are trained at
  r_tolerance: float = 0.1  # a sweep shape's r may miss its target by this much (in log)
  vocab_size: int = 0  # the BPE vocabulary of the data and the model (0: LLaMA-3's 128,256)
  ffn_step: int = 256  # ffn_dim is a multiple of this
  d_step: int = 0  # the sweep's d_model is a multiple of this (0: head_dim)
  config_overrides: tuple[str, ...] = ()  # dotted overrides of configs/train.py it also fixes
  # The peak LR's width rule: the anchors' LR times (d/sqrt(N) / lr_x_ref) ** lr_width_exponent
  # (0: one LR for every shape of a scale; -1: the LR falls as 1/d_model at fixed N, muP-like)
  lr_width_exponent: float = 0.0
  lr_x_ref: float = 0.13
  # > 0: the batch (sequences) is the largest power of 2 that still gives the nearest named scale
  # at least this many optimizer steps (0: config_overrides' batch)
  min_steps: int = 0

  def scale(self, name: str) -> tuple[float, int]:
    """(nominal N, n_layers) of a named sweep scale."""
    for scale, n_params, n_layers in self.scales:
      if scale == name:
        return n_params, n_layers
    raise UserError(f"unknown scale {name!r} in recipe {self.name!r}; known: "
                     f"{', '.join(s for s, _, _ in self.scales)}")

  def scale_of(self, n_params: float) -> str:
    """The named sweep scale nearest `n_params` (non-embedding, or active for a mixture) in log."""
    return min(self.scales, key=lambda s: abs(math.log(n_params / s[1])))[0]

  @property
  def model_vocab_size(self) -> int:
    return self.vocab_size or 128256

  def build(self, n_params: float, *, n_layers: int, d_model: int, r: float, gqa: int = 0,
            head_dim: int = 0, mla: arch.MlaDims | None = None) -> arch.ArchSpec:
    """The recipe's integer shape nearest to (N, d_model, r): its head_dim, GQA, vocabulary and
    ffn_dim step unless given (`arch.from_budget`); with `mla`, that MLA family's shape
    (`arch.mla_from_budget`: the head count and ffn_dim)."""
    if mla is not None:
      return arch.mla_from_budget(n_params, n_layers=n_layers, d_model=d_model, r=r, dims=mla,
                                  vocab_size=self.model_vocab_size, ffn_step=self.ffn_step)
    return arch.from_budget(n_params, n_layers=n_layers, head_dim=head_dim or self.head_dim(n_params),
                            d_model=d_model, r=r, gqa=gqa or self.sweep_gqa,
                            vocab_size=self.model_vocab_size, ffn_step=self.ffn_step)

  def baseline(self, scale: str) -> arch.ArchSpec:
    """The LLaMA-3.2-shaped baseline at a named scale (baseline_x, baseline_r, baseline_gqa)."""
    n_params, n_layers = self.scale(scale)
    step = self.d_step or self.head_dim(n_params)
    width = self.baseline_x * math.sqrt(n_params) / step
    shapes = [self.build(n_params, n_layers=n_layers, d_model=k * step, r=self.baseline_r,
                         gqa=self.baseline_gqa)
              for k in {max(1, math.floor(width)), max(1, math.ceil(width))}]
    return min(shapes, key=lambda s: math.log(s.mlp_attn_ratio / self.baseline_r) ** 2
               + math.log(s.d_over_sqrt_n / self.baseline_x) ** 2)

  def mla_dims(self, n_params: float, kv_lora_rank: int, q_lora_rank: int = 0,
               qk_rope_head_dim: int = 0) -> arch.MlaDims:
    """An MLA family at this recipe's head width: qk_nope_head_dim = v_head_dim = head_dim, a
    RoPE part of head_dim / 2 unless given (DeepSeek-V3's 128 / 64 proportions)."""
    h = self.head_dim(n_params)
    return arch.MlaDims(kv_lora_rank, h, qk_rope_head_dim or h // 2, h, q_lora_rank)

  def sweep_shapes(self, scale: str, x_grid: Sequence[float] = (), r_grid: Sequence[float] = (),
                   mla: arch.MlaDims | None = None) -> list[tuple[float, float, arch.ArchSpec]]:
    """(x target, r target, ArchSpec) of every run of the recipe's sweep at one named scale.

    "grid": every x with every r. "cross": x_grid at r = cross_r, then r_grid at the d_model
    that x = cross_x gives (the paper's hidden-size sweep at fixed r and r sweep at fixed d);
    the shape where they meet is kept once. Grids default to the recipe's. With `mla`, the
    MLA shapes of that family at the same targets.
    """
    n_params, n_layers = self.scale(scale)
    x_grid, r_grid = tuple(x_grid or self.x_grid), tuple(r_grid or self.r_grid)
    if self.sweep_design == "grid":
      designs = [(x_grid, r_grid)]
    elif self.sweep_design == "cross":
      designs = [(x_grid, (self.cross_r,)), ((self.cross_x,), r_grid)]
    else:
      raise UserError(f"recipe {self.name!r}: sweep_design={self.sweep_design!r}; use 'grid' or "
                       "'cross'")
    out, seen = [], set()
    for xs, rs in designs:
      for x, r, spec in arch.sweep_grid(
          n_params, n_layers=n_layers, head_dim=self.head_dim(n_params), gqa=self.sweep_gqa,
          x_grid=xs, r_grid=rs, vocab_size=self.model_vocab_size, ffn_step=self.ffn_step,
          d_step=self.d_step, r_tolerance=self.r_tolerance, mla=mla):
        if spec not in seen:
          seen.add(spec)
          out.append((x, r, spec))
    return out

  def tokens(self, n_params: float) -> int:
    return int(round(self.tokens_per_param * n_params))

  def batch_size(self, n_params: float) -> int:
    """The min_steps rule at the named scale nearest N in log (every shape of a scale gets the
    same batch, whatever its exact N)."""
    if not self.min_steps:
      raise UserError(f"recipe {self.name!r} has no batch rule (min_steps=0)")
    nominal, _ = self.scale(self.scale_of(n_params))
    sequences = self.tokens(nominal) / (self.seq_len * self.min_steps)
    return 2 ** max(0, math.floor(math.log2(sequences)))

  def head_dim(self, n_params: float) -> int:
    return self.head_dim_small if n_params <= self.head_dim_threshold else self.head_dim_large

  def peak_lr(self, n_params: float, d_over_sqrt_n: float | None = None) -> float:
    """The anchors interpolated log-linearly in log N (constant beyond the ends), times the width
    rule at this d/sqrt(N) (needed when the recipe has one)."""
    width = 1.0
    if self.lr_width_exponent:
      if d_over_sqrt_n is None:
        raise UserError(f"recipe {self.name!r} sets the LR by width: give d/sqrt(N)")
      width = (d_over_sqrt_n / self.lr_x_ref) ** self.lr_width_exponent
    ns, lrs = zip(*self.lr_anchors)
    x = min(max(math.log(n_params), math.log(ns[0])), math.log(ns[-1]))
    for (n0, l0), (n1, l1) in zip(self.lr_anchors, self.lr_anchors[1:]):
      if x <= math.log(n1):
        t = (x - math.log(n0)) / (math.log(n1) - math.log(n0))
        return width * math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0)))
    return width * lrs[-1]


PAPER = Recipe(
    name="paper", tokens_per_param=100.0, head_dim_small=64, head_dim_large=128,
    head_dim_threshold=1.5e9,  # the paper's 1B models use 64, its 3B models 128
    lr_anchors=((80e6, 3e-3), (145e6, 2.5e-3), (297e6, 2e-3), (1e9, 1e-3), (3e9, 6e-4)),
    warmup_fraction=0.01, seq_len=2048,
    scales=(("80M", 80e6, 12), ("145M", 145e6, 14), ("297M", 297e6, 18), ("1B", 1e9, 16)),
    x_grid=(0.04, 0.05, 0.065, 0.08, 0.1, 0.125, 0.16),
    r_grid=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0),
    fit_scales=("80M", "145M", "297M"), heldout_scale="1B")

CPU = Recipe(
    name="cpu", tokens_per_param=20.0, head_dim_small=16, head_dim_large=16,
    head_dim_threshold=math.inf,
    lr_anchors=(_lr_cpu(8e4), _lr_cpu(6e5)),
    warmup_fraction=0.05, seq_len=128,
    scales=(("80k", 8e4, 4), ("145k", 1.45e5, 4), ("297k", 2.97e5, 4), ("600k", 6e5, 4)),
    x_grid=(0.06, 0.08, 0.1, 0.13, 0.17, 0.22, 0.29), r_grid=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
    sweep_gqa=1, sweep_design="cross", cross_x=0.13, cross_r=1.0,
    fit_scales=("80k", "145k", "297k"), heldout_scale="600k",
    r_tolerance=0.2, vocab_size=512, ffn_step=8, d_step=8,
    config_overrides=("train.batch_size=32", "train.eval_every=0", "train.eval_batches=0",
                      "train.checkpoint_every=500", "data.heldout_fraction=0.05"))

# CPU v2: recipe CPU with the seed noise tamed (experiments/noise/, experiments/RESULTS.md "Noise"):
# - at least 1,500 optimizer steps at every scale (batch 8, 8, 16, 32 at 80k, 145k, 297k, 600k)
#   instead of batch 32 everywhere (395 steps at 80k): at 80k the seed SD falls from 0.11 nats
#   (batch 32) to 0.032 (batch 16) and 0.017 (batch 8, 1,580 steps), and the loss for the same
#   tokens by 0.55 nats; batch 4 (3,160 steps) is no quieter and half as fast.
# - 20% warmup instead of 5%: a further 0.04 nats lower and seed SD 0.014 at 80k with batch 8.
# - the LR by width, muP-like: v1's LR times 0.13 / (d/sqrt(N)) (each shape's optimal multiple
#   in the 145k scan falls with width: >= 2 at d/sqrt(N) 0.06, 1.3-2 at 0.13, 0.8 at 0.21;
#   lr_rule.json); at 0.13, v1's LR (the scan's optimum is higher, but seeds spread more there).
CPU_V2 = dataclasses.replace(
    CPU, name="cpu_v2", warmup_fraction=0.2, lr_width_exponent=-1.0, min_steps=1500,
    scales=CPU.scales + (("320k", 3.2e5, 4),),  # the MoE law's held-out scale (moe_law_cpu)
    config_overrides=tuple(o for o in CPU.config_overrides
                           if not o.startswith("train.batch_size=")))

# GPU v2: replication v2's design 25x larger, for one accelerator (experiments/cpu_replication_v2/
# train_all.sh with RECIPE=gpu_v2; not yet run: no GPU was lent). The same cross design, grids,
# depth, D = 20 N, warmup, width rule and >= 1,500 steps; the scales are the paper's 80M / 145M /
# 297M / 600M divided by 40 (2M, 3.6M, 7.4M, 15M). Changed with the width (d_model 85-1,120):
# - head_dim 64 (the paper's below 1B, and what the Mosaic GPU decode kernel takes), d_model and
#   ffn_dim in steps of 16;
# - a 2,048-token vocabulary: the tied embedding at 10-45% of N over the grid, as 512 on the CPU;
# - sequence length 256 (attention's T x d_q work per token at about the CPU recipe's share);
# - the LR anchors continue the CPU's N^-1/4 rule (1.5e-3 at 2M to 9.3e-4 at 15M, times the width
#   rule): an extrapolation over 25x; scan it first (`configs/sweep.py:...,lr=0.5+0.71+1+1.41+2`);
# - the data: 20 N tokens is 300 M at 15M, twenty times the embedded corpus: give your own text
#   (`lawsearch data prepare --source text --path ...`, then data=text and data.path).
GPU_V2 = dataclasses.replace(
    CPU_V2, name="gpu_v2", head_dim_small=64, head_dim_large=64, seq_len=256,
    lr_anchors=(_lr_cpu(2e6), _lr_cpu(1.5e7)),
    scales=(("2M", 2e6, 4), ("3.6M", 3.625e6, 4), ("7.4M", 7.425e6, 4), ("15M", 1.5e7, 4)),
    fit_scales=("2M", "3.6M", "7.4M"), heldout_scale="15M",
    vocab_size=2048, ffn_step=16, d_step=16)

RECIPES = {"paper": PAPER, "cpu": CPU, "cpu_v2": CPU_V2, "gpu_v2": GPU_V2}


def recipe(name: str) -> Recipe:
  try:
    return RECIPES[name]
  except KeyError:
    raise UserError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
