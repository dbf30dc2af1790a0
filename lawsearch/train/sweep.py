"""Training sweeps: a sweep config lists `configs/train.py` runs; each trains in its own directory.

    sweep config: train_config (path), runs (one train.py ARG each), overrides (dotted, every run)
    expand(sweep, overrides) -> [(name, run config)]
    run(sweep, root, ...)    -> RunRecords, training each run in turn with `loop.run`

A run's directory is `runs.run_dir(root, run config, name)`, a hash of the whole config: running
the same sweep again skips finished runs (their result.json) and resumes interrupted ones from
their last checkpoint, so a sweep is continued by repeating its command.
"""

from __future__ import annotations

import time
from typing import Sequence

import ml_collections

from lawsearch import configlib, paths, runs
from lawsearch.errors import UserError
from lawsearch.train import loop


def expand(sweep: ml_collections.ConfigDict,
           overrides: Sequence[str] = ()) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(name, run config) of every run; `overrides` ("a.b=v") apply after the sweep's own. Runs
  whose configs are equal (two picks of one shape) are listed once, so no two workers of a
  sharded sweep ever train the same run directory."""
  if not sweep.runs:
    raise UserError("the sweep has no runs: its grids left no buildable architecture; widen "
                     "the x or r grid (see configs/sweep.py)")
  out, seen = [], set()
  for arg in sweep.runs:
    config = configlib.load(f"{sweep.train_config}:{arg}", [*sweep.overrides, *overrides])
    spec = loop.arch_spec(config)
    name = (f"N{spec.non_embedding_params / 1e6:.3g}M-d{spec.d_model}-f{spec.ffn_dim}"
            f"-h{spec.n_heads}x{spec.n_kv_heads}" + (f"-s{config.seed}" if config.seed else ""))
    key = runs.config_hash(config)
    if key not in seen:
      seen.add(key)
      out.append((name, config))
  return out


def status(workdir) -> str:
  """'finished' (result.json), 'started' (the directory exists) or 'new'."""
  if runs.read_result(workdir) is not None:
    return "finished"
  return "started" if paths.is_dir(workdir) else "new"


def parse_shard(text: str) -> tuple[int, int]:
  """"i/n" -> (i, n) with 0 <= i < n: the i-th of n static shares of a sweep's runs."""
  i, _, n = text.partition("/")
  try:
    index, count = int(i), int(n)
  except ValueError:
    raise UserError(f"--shard {text!r}: give it as i/n, e.g. 0/2 and 1/2 for two workers") from None
  if not 0 <= index < count:
    raise UserError(f"--shard {text!r}: need 0 <= i < n")
  return index, count


def run(sweep: ml_collections.ConfigDict, root: str, *, overrides: Sequence[str] = (),
        dry_run: bool = False, progress: bool = True,
        shard: tuple[int, int] = (0, 1)) -> list[runs.RunRecord]:
  """Trains every run not finished under `root` (or, with dry_run, only lists them); returns the
  RunRecords of the finished runs, in sweep order. shard=(i, n) takes runs i, i+n, i+2n, ...
  of the sweep, so n workers given 0/n .. n-1/n share it without overlap."""
  planned = []
  index, count = shard
  for name, config in expand(sweep, overrides)[index::count]:
    workdir = str(runs.run_dir(root, config, name))
    planned.append((name, config, workdir, status(workdir)))
  counts = {s: sum(p[3] == s for p in planned) for s in ("finished", "started", "new")}
  print(f"lawsearch sweep: {len(planned)} runs under {root}: " +
        ", ".join(f"{n} {s}" for s, n in counts.items()), flush=True)
  records, t0 = [], time.perf_counter()
  for i, (name, config, workdir, state) in enumerate(planned, 1):
    spec = loop.arch_spec(config)
    print(f"[{i}/{len(planned)}] {name} (N={spec.non_embedding_params:,}, "
          f"{loop.total_steps(config)} steps) {state}: {workdir}", flush=True)
    if dry_run:
      continue
    records.append(loop.run(config, workdir, progress=progress))
    if state != "finished":
      print(f"  loss {records[-1].loss:.4f}; {time.perf_counter() - t0:.0f} s so far", flush=True)
  return records
