"""Training FLOPs, MFU and the metrics log (JSON lines, written by process 0 only).

FLOPs per trained token (PaLM, Chowdhery et al. 2022, appendix B; as nanoGPT's estimate_mfu),
with every shape number from `ArchSpec`:
    6 * (N + d*V) + 12 * n_layers * attn_width * T
N non-embedding parameters, d*V the output head (tied or not), T the sequence length: forward and
backward of every matmul, plus the attention scores and values over the full T x T square.
"""

from __future__ import annotations

import json
import os

import numpy as np

from lawsearch.arch import ArchSpec


def train_flops_per_token(arch: ArchSpec, seq_len: int) -> float:
  return (6.0 * (arch.non_embedding_params + arch.d_model * arch.vocab_size)
          + 12.0 * arch.n_layers * arch.attn_width * seq_len)


def block_bootstrap_se(values, blocks, *, resamples: int = 2000, seed: int = 0) -> float:
  """Standard error of mean(values) by a block bootstrap: whole blocks are resampled.

  values: [n] per-window mean losses (windows of equal length); blocks: [n] a block id per value
  (windows of one block of the corpus are correlated, blocks nearly independent). The bootstrap
  draws as many blocks as there are, with replacement, and takes the std of the resampled means
  (token-weighted: a block counts with its number of windows). 0.0 for fewer than 2 blocks.
  """
  values, blocks = np.asarray(values, np.float64), np.asarray(blocks)
  _, block_of = np.unique(blocks, return_inverse=True)
  n_blocks = int(block_of.max()) + 1 if len(values) else 0
  if n_blocks < 2:
    return 0.0
  sums = np.bincount(block_of, weights=values, minlength=n_blocks)
  counts = np.bincount(block_of, minlength=n_blocks).astype(np.float64)
  draws = np.random.default_rng(seed).integers(0, n_blocks, (resamples, n_blocks))
  means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
  return float(means.std(ddof=1))


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops_per_device: float,
        n_devices: int) -> float:
  """Model FLOPs utilisation: achieved model FLOP/s over the devices' peak."""
  return tokens_per_s * flops_per_token / (peak_flops_per_device * n_devices)


def peak_flops(device_kind: str, override: float = 0.0) -> float | None:
  """Peak bf16 FLOP/s of one device: `override` if > 0, else from lawsearch.cost.HARDWARE by
  device kind (H100, H200, A100, TPU v5e/v5p/v6e); None when unknown (e.g. CPU)."""
  if override > 0:
    return float(override)
  from lawsearch.cost import HARDWARE  # pylint: disable=import-outside-toplevel

  kind = device_kind.lower()
  table = (("h100", "h100-sxm"), ("h200", "h200"), ("a100", "a100-80gb"),
           ("v5 lite", "tpu-v5e"), ("v5e", "tpu-v5e"), ("v5p", "tpu-v5p"), ("tpu v5", "tpu-v5p"),
           ("v6", "tpu-v6e"))
  for needle, name in table:
    if needle in kind:
      return HARDWARE[name].peak_flops
  return None


class MetricsLog:
  """Appends one JSON object per line to <workdir>/metrics.jsonl (no-op when not `enabled`)."""

  def __init__(self, path: str, enabled: bool = True):
    self.path, self.enabled = path, enabled

  def truncate_after(self, step: int):
    """Drop records of steps > `step` (a resumed run rewrites them)."""
    if not (self.enabled and os.path.exists(self.path)):
      return
    with open(self.path) as f:
      keep = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
    with open(self.path + ".tmp", "w") as f:
      f.writelines(keep)
    os.replace(self.path + ".tmp", self.path)

  def last(self, key: str) -> float:
    """The latest value of `key` in the log (NaN when there is none, or the log is disabled)."""
    if not (self.enabled and os.path.exists(self.path)):
      return float("nan")
    values = [r[key] for r in read(self.path) if key in r]
    return float(values[-1]) if values else float("nan")

  def write(self, record: dict):
    if self.enabled:
      with open(self.path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
