"""What a sweep costs before it runs: its training FLOPs, and the wall time and chip-hours on
clusters of a stated size at a measured model FLOPs utilisation (MFU).

    est = estimate([(spec, tokens, seq_len), ...])     # a SweepEstimate
    est.rows                                           # one per cluster in CLUSTERS

FLOPs per run: tokens x metrics.train_flops_per_token (6 N + the output head + attention's
12 L T d_attn per token). Chip-seconds: FLOPs / (peak bf16 FLOP/s x MFU). Wall time on a cluster
of C chips: chip-seconds / C, i.e. perfect packing of the runs and linear scaling of each run
over the chips it gets: a lower bound, closest for sweeps of many runs, each of many chips.

Imports no JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from lawsearch.arch import ArchSpec
from lawsearch.cost import HARDWARE
from lawsearch.errors import UserError
from lawsearch.table import format_table
from lawsearch.train.metrics import train_flops_per_token

# `lawsearch train` itself on one H100 (s80m at sequence 2048: grain data, orbax checkpoints,
# evals included), the median over its logged intervals: experiments/results/
# gpu_train_resume_h100.json ("mfu_median"; tests/test_estimate.py reads it back). No TPU has
# been measured: the same MFU is assumed for v5p, and said so where it is printed.
MEASURED_MFU = 0.362
MFU_SOURCE = "lawsearch train on one H100 (s80m, experiments/results/gpu_train_resume_h100.json)"

# (hardware, chips): the clusters an estimate is printed for.
CLUSTERS = (("h100-sxm", 64), ("h100-sxm", 256), ("tpu-v5p", 128), ("tpu-v5p", 512))


@dataclasses.dataclass(frozen=True)
class ClusterEstimate:
  hardware: str
  chips: int
  mfu: float
  wall_s: float  # seconds, perfect packing (a lower bound)
  chip_hours: float


@dataclasses.dataclass(frozen=True)
class SweepEstimate:
  """A sweep's runs, their total training FLOPs and tokens, and one row per cluster."""

  runs: int
  tokens: float
  flops: float
  rows: tuple[ClusterEstimate, ...]
  mfu_source: str

  def summary(self) -> str:
    """The scale of the sweep, then each cluster's MFU, wall time and chip-hours."""
    rows = [{"cluster": f"{r.chips} x {r.hardware}", "MFU": f"{r.mfu:.1%}",
             "wall time": f"{r.wall_s / 86400:.2f} d" if r.wall_s >= 86400 else
             f"{r.wall_s / 3600:.1f} h" if r.wall_s >= 360 else f"{r.wall_s / 60:.1f} min",
             "chip-hours": f"{r.chip_hours:,.0f}" if r.chip_hours >= 10 else f"{r.chip_hours:.2g}"}
            for r in self.rows]
    return (f"\nscale: {self.runs} runs, {self.tokens:.3g} tokens, {self.flops:.3g} training "
            f"FLOPs (MFU {self.mfu_source}; wall time assumes perfect packing and linear "
            f"scaling: a lower bound)\n" + format_table(rows, list(rows[0])))


def estimate(runs: Iterable[tuple[ArchSpec, float, int]], clusters=CLUSTERS,
             mfu: float = MEASURED_MFU, mfu_source: str = MFU_SOURCE) -> SweepEstimate:
  """The estimate for `runs`, each (architecture, training tokens, sequence length)."""
  if not 0 < mfu <= 1:
    raise UserError(f"mfu={mfu!r} must lie in (0, 1]")
  runs = list(runs)
  flops = sum(tokens * train_flops_per_token(spec, seq_len) for spec, tokens, seq_len in runs)
  rows = []
  for name, chips in clusters:
    if name not in HARDWARE:
      raise UserError(f"unknown hardware {name!r}; known: {', '.join(HARDWARE)}")
    chip_s = flops / (HARDWARE[name].peak_flops * mfu)
    rows.append(ClusterEstimate(name, chips, mfu, chip_s / chips, chip_s / 3600))
  return SweepEstimate(len(runs), float(sum(t for _, t, _ in runs)), flops, tuple(rows),
                       mfu_source)


def runs_of(configs) -> list[tuple[ArchSpec, float, int]]:
  """(architecture, training tokens, sequence length) of each training config (configs/train.py
  ConfigDicts), as `estimate` takes them."""
  from lawsearch.train import loop  # pylint: disable=import-outside-toplevel

  return [(loop.arch_spec(c), float(loop.total_steps(c) * c.train.batch_size * c.train.seq_len),
           c.train.seq_len) for c in configs]


def for_configs(configs, **kwargs) -> SweepEstimate:
  """The estimate for training configs (their shapes, steps and batches)."""
  return estimate(runs_of(configs), **kwargs)
