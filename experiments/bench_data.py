"""Input-pipeline throughput: lawsearch's grain loader against nanoGPT's `get_batch`, same run.

Both read windows of seq_len+1 tokens from the same memory-mapped train.bin and return int32
(inputs, targets) of [batch, seq_len]. The peer is nanoGPT's train.py `get_batch`: random offsets
with np.random.randint, a Python list of slices, np.stack (no shuffling without replacement, no
sharding, no checkpointable state, no prefetch). Reports batches/s and tokens/s, medians of
--repeats timed passes of --batches batches each, after one warm-up pass.

  .venv/bin/python experiments/bench_data.py                      # default corpus (prepared)
  .venv/bin/python experiments/bench_data.py --seq-len 2048 --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from lawsearch.data import pipeline, tokens


def nanogpt_get_batch(ids: np.ndarray, seq_len: int, batch: int, rng: np.random.Generator):
  """nanoGPT's get_batch (train.py), in numpy: random windows stacked into [batch, seq_len]."""
  ix = rng.integers(0, len(ids) - seq_len - 1, size=batch)
  x = np.stack([ids[i:i + seq_len].astype(np.int32) for i in ix])
  y = np.stack([ids[i + 1:i + 1 + seq_len].astype(np.int32) for i in ix])
  return x, y


def timed(fn, batches: int, repeats: int) -> float:
  """Median seconds per batch of `fn()` over `repeats` passes of `batches` calls (+1 warm-up)."""
  times = []
  for r in range(repeats + 1):
    t0 = time.perf_counter()
    for _ in range(batches):
      fn()
    if r:
      times.append((time.perf_counter() - t0) / batches)
  return statistics.median(times)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seq-len", type=int, default=256)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--batches", type=int, default=200)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--cache-dir", default="")
  args = p.parse_args()

  cfg = dict(source="default", cache_dir=args.cache_dir, num_threads=args.threads, prefetch=8)
  loader = pipeline.make_loader(cfg, seq_len=args.seq_len, global_batch_size=args.batch, seed=0,
                                process_index=0, process_count=1)
  ids = tokens.build(tokens.DataSpec.from_config(cfg)).array("train")
  rng = np.random.default_rng(0)
  ours = timed(lambda: next(loader), args.batches, args.repeats)
  peer = timed(lambda: nanogpt_get_batch(ids, args.seq_len, args.batch, rng), args.batches,
               args.repeats)
  tok = args.batch * args.seq_len
  print(f"corpus: {len(ids):,} train tokens; batch {args.batch} x seq {args.seq_len}, "
        f"{args.threads} reader threads; median of {args.repeats} x {args.batches} batches")
  for name, s in (("lawsearch grain loader", ours), ("nanoGPT get_batch (peer)", peer)):
    print(f"  {name:26s} {1 / s:10.1f} batches/s  {tok / s / 1e6:8.2f} M tokens/s")
  print(f"  ratio (lawsearch / peer): {peer / ours:.2f}x")


if __name__ == "__main__":
  main()
