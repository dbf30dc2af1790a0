"""Training FLOPs, MFU and the metrics log (JSON lines, written by process 0 only).

FLOPs per trained token (PaLM, Chowdhery et al. 2022, appendix B; as nanoGPT's estimate_mfu),
with every shape number from `ArchSpec`:
    6 * (N + d*V) + 6 * n_layers * (attn_width + v_width) * T
N non-embedding parameters, d*V the output head (tied or not), T the sequence length: forward and
backward of every matmul, plus the attention scores and values over the full T x T square
(v_width = attn_width for GQA, the PaLM form; MLA's value heads may be narrower).
"""

from __future__ import annotations

import json

import numpy as np

from lawsearch import paths, rundir
from lawsearch.arch import ArchSpec


def train_flops_per_token(arch: ArchSpec, seq_len: int) -> float:
  return (6.0 * (arch.non_embedding_params + arch.d_model * arch.vocab_size)
          + 6.0 * arch.n_layers * (arch.attn_width + arch.v_width) * seq_len)


def block_means(values, blocks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(block ids, mean of the values in each block, values per block), blocks in sorted order."""
  ids, block_of = np.unique(np.asarray(blocks), return_inverse=True)
  counts = np.bincount(block_of, minlength=len(ids))
  sums = np.bincount(block_of, weights=np.asarray(values, np.float64), minlength=len(ids))
  return ids, sums / np.maximum(counts, 1), counts


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops_per_device: float,
        n_devices: int) -> float:
  """Model FLOPs utilisation: achieved model FLOP/s over the devices' peak."""
  return tokens_per_s * flops_per_token / (peak_flops_per_device * n_devices)


def peak_flops(device_kind: str, override: float = 0.0) -> float | None:
  """Peak bf16 FLOP/s of one device: `override` if > 0, else from lawsearch.cost.HARDWARE by
  device kind (H100, H200, A100, TPU v5e/v5p/v6e); None when unknown (e.g. CPU)."""
  if override > 0:
    return float(override)
  from lawsearch.cost import hardware_for_device  # pylint: disable=import-outside-toplevel

  hw = hardware_for_device(device_kind)
  return None if hw is None else hw.peak_flops


class MetricsLog:
  """Appends one JSON object per line to <workdir>/metrics.jsonl (no-op when not `enabled`).

  `path` is local or a URL (lawsearch.paths)."""

  def __init__(self, path, enabled: bool = True, repair: bool = False):
    self.path, self.enabled, self.repair = path, enabled, repair

  def truncate_after(self, step: int):
    """Drop records of steps > `step` (a resumed run rewrites them). A damaged log is an
    inputs.DamagedFile, unless `repair` (its unreadable lines are dropped)."""
    if not (self.enabled and paths.exists(self.path)):
      return
    keep = [r for r in read(self.path, self.repair) if r.get("step", 0) <= step]
    paths.write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

  def last(self, key: str) -> float:
    """The latest value of `key` in the log (NaN when there is none, or the log is disabled)."""
    if not (self.enabled and paths.exists(self.path)):
      return float("nan")
    values = [r[key] for r in read(self.path, self.repair)
              if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    return float(values[-1]) if values else float("nan")

  def write(self, record: dict):
    if self.enabled:
      paths.append_text(self.path, json.dumps(record) + "\n")


def read(path, repair: bool = False) -> list[dict]:
  """The records of a metrics log (local path or URL), checked (inputs.read_file: a damaged log
  is an inputs.DamagedFile; `repair` drops its unreadable lines instead)."""
  return rundir.read_file(path, "metrics", repair=repair)
