"""Training sweeps: a sweep config lists `configs/train.py` runs; each trains in its own directory.

    sweep config: train_config (path), runs (one train.py ARG each), overrides (dotted, every run)
    expand(sweep, overrides) -> [(name, run config)]
    run(sweep, root, ...)    -> SweepResult, training each run in turn with `loop.run`
    state(workdir)           -> RunState: finished, failed, corrupt, running, stale, started, new

A run's directory is `RunDir.locate(root, name, run config)`, named by its run identity: running
the same sweep again skips finished runs (their result.json) and resumes interrupted ones from
their last checkpoint, so a sweep is continued by repeating its command. Any number of workers
may run the same sweep on one root at once (a shared filesystem or a gs:// bucket): they split
the runs through claims (lawsearch.train.claims), without a coordinator.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time
import traceback
from typing import Sequence

import jax
import ml_collections
import numpy as np

from lawsearch import configlib, inputs, paths, runs
from lawsearch.rundir import RunDir, RunIdentity
from lawsearch.errors import UserError
from lawsearch.table import format_table
from lawsearch.train import claims, estimate, group, loop
from lawsearch.train import metrics as metrics_lib

SUMMARY_COLUMNS = ("n_params", "d_model", "mlp_attn_ratio", "d_over_sqrt_n", "tokens", "loss",
                   "train_loss")  # of the finished runs, in SweepResult.summary


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
            + (f"-mla{spec.n_heads}r{spec.kv_lora_rank}" if spec.is_mla
               else f"-h{spec.n_heads}x{spec.n_kv_heads}")
            + (f"-e{spec.n_experts}k{spec.top_k}f{spec.expert_ffn_dim}" if spec.is_moe else "")
            + (f"-s{config.seed}" if config.seed else "")
            + (f"-lr{lr_scale}" if (lr_scale := _arg_value(arg, "lr_scale")) else ""))
    key = RunIdentity.of(config).hash
    if key not in seen:
      seen.add(key)
      out.append((name, config))
  return out


def _arg_value(arg: str, key: str) -> str:
  """The raw value of `key` in a configs/train.py ARG ("" where absent)."""
  return next((v for k, _, v in (item.partition("=") for item in arg.split(",")) if k == key), "")


@dataclasses.dataclass(frozen=True)
class RunState:
  """Where one run of a sweep stands.

  kind: finished (result.json) | failed (failed.json) | corrupt (an unreadable result.json) |
  running (a live claim) | stale (a claim whose heartbeat stopped, or an unreadable claim) |
  started (a directory, no live claim: stopped, or trained before claims) | new."""

  kind: str
  claim: claims.Claim | None = None
  failure: dict | None = None
  record: runs.RunRecord | None = None
  note: str = ""  # what is wrong with a corrupt record or claim


def state(workdir, stale_s: float = claims.STALE_S) -> RunState:
  """The run's RunState, read from its directory (local or gs://)."""
  try:
    record = runs.RunRecord.read(workdir)
  except inputs.DamagedFile as e:  # half a file, JSON of another kind
    return RunState("corrupt", note=f"{RunDir.RESULT}: {e.problem}"[:300])
  if record is not None:
    return RunState("finished", record=record)
  failed = claims.failure(workdir)
  if failed is not None:
    return RunState("failed", failure=failed)
  claim = claims.latest(workdir)
  if claim is not None and claim.live(stale_s):
    return RunState("running", claim=claim)
  if claim is not None and not claim.released:
    return RunState("stale", claim=claim, note=claim.corrupt)
  return RunState("started" if paths.is_dir(workdir) else "new", claim=claim)


def _check_arguments(sweep, root, function: str) -> None:
  if not all(hasattr(sweep, g) for g in ("train_config", "runs")):
    raise UserError(f"{function}: sweep must be a sweep config (a ConfigDict with train_config "
                    f"and runs, from configlib.load), got {type(sweep).__name__}")
  inputs.argument(root, "root", "path", function)


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


@dataclasses.dataclass(frozen=True)
class PlannedRun:
  name: str
  config: ml_collections.ConfigDict
  workdir: str


def plan(sweep: ml_collections.ConfigDict, root: str, overrides: Sequence[str] = (),
         shard: tuple[int, int] = (0, 1)) -> list[PlannedRun]:
  """The runs of `sweep` under `root` (shard (i, n): runs i, i+n, i+2n, ...)."""
  index, count = shard
  return [PlannedRun(name, config, str(RunDir.locate(root, name, config)))
          for name, config in expand(sweep, overrides)[index::count]]


@dataclasses.dataclass(frozen=True)
class SweepResult:
  """What one worker's pass over a sweep left: `planned`, the runs of its share; `records`, the
  RunRecords of those finished, in sweep order; `failed`, (name, error) of each recorded as
  failed (failed.json)."""

  root: str
  planned: tuple[PlannedRun, ...]
  records: tuple[runs.RunRecord, ...]
  failed: tuple[tuple[str, str], ...]

  def summary(self) -> str:
    """What `lawsearch sweep` prints: the finished runs as a table, then the command that fits
    the laws on them."""
    return (format_table([r.to_dict() for r in self.records], list(SUMMARY_COLUMNS))
            + f"\nnext: lawsearch fit --runs {self.root}")

  def failure_summary(self) -> str:
    """The failed runs for people: how many, then each run with its error's first line."""
    return (f"lawsearch sweep: {len(self.failed)} run(s) failed (--retry-failed retries them):\n"
            + "\n".join(f"  {name}: {error.splitlines()[0][:200]}" for name, error in self.failed))


def _agree(value: int) -> int:
  """Process 0's `value` on every process (one process: `value`): the processes of a multi-host
  run train the same runs, and only process 0 claims and records."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

  return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def run(sweep: ml_collections.ConfigDict, root: str, *, overrides: Sequence[str] = (),
        dry_run: bool = False, progress: bool = True, shard: tuple[int, int] = (0, 1),
        retry_failed: bool = False, worker: str | None = None,
        heartbeat_s: float = claims.HEARTBEAT_S, stale_s: float = claims.STALE_S,
        wait: bool = True, repair: bool = False, seed_groups: bool = False) -> SweepResult:
  """Trains the runs of `sweep` under `root` that nobody has finished, as one of any number of
  workers on the same root (see lawsearch.train.claims); returns the runs planned, the
  RunRecords of those finished (in sweep order) and the failed ones. With dry_run it only lists
  them.

  A worker claims a run before training it and skips runs finished, failed or claimed by a live
  worker; it takes over a run whose claimant's heartbeat stopped (resuming from its checkpoint).
  With `wait` it stays until no run is left running elsewhere, so that it can take over the runs
  of workers that die. A run whose training raises is recorded as failed (failed.json) and
  skipped from then on; retry_failed clears those records (and unreadable result.json files)
  first. shard=(i, n) keeps the static split: runs i, i+n, i+2n, ... `repair` drops the
  unreadable lines of the runs' logs (loop.train). A full or read-only disk stops the sweep
  (an OSError: every later run would fail the same way), its claim released where the disk
  allows and no run recorded as failed for it. With `seed_groups` a worker that claims a run
  also claims the other runs that differ from it only in seed (neither finished, failed nor
  claimed) and trains them as one program (train/group.py; one device only)."""
  _check_arguments(sweep, root, "sweep.run")
  for name, value, kind in (("dry_run", dry_run, "bool"), ("progress", progress, "bool"),
                            ("retry_failed", retry_failed, "bool"), ("wait", wait, "bool"),
                            ("repair", repair, "bool"), ("seed_groups", seed_groups, "bool"),
                            ("heartbeat_s", heartbeat_s, "positive"),
                            ("stale_s", stale_s, "positive")):
    inputs.argument(value, name, kind, "sweep.run")
  inputs.argument(worker, "worker", "string", "sweep.run", optional=True)
  claims.check_timing(heartbeat_s, stale_s)
  planned = plan(sweep, root, overrides, shard)
  if not planned:
    return SweepResult(str(root), (), (), ())
  worker = worker or claims.worker_id()
  loop.initialize_distributed(planned[0].config)  # a multi-host worker: before any decision
  main = jax.process_index() == 0
  if seed_groups and not dry_run:
    group.check_devices()
  states = [state(p.workdir, stale_s) for p in planned]
  if retry_failed and not dry_run and main:
    for p, s in zip(planned, states):
      if s.kind == "failed":
        claims.clear_failure(p.workdir)
      elif s.kind == "corrupt":
        paths.remove(RunDir(p.workdir).result)
    states = [state(p.workdir, stale_s) for p in planned]
  counts = collections.Counter(s.kind for s in states)
  print(f"lawsearch sweep: {len(planned)} runs under {root} ({worker}): " +
        ", ".join(f"{n} {k}" for k, n in counts.items()), flush=True)
  for i, (p, s) in enumerate(zip(planned, states), 1):
    if dry_run or s.kind in ("failed", "corrupt"):
      print(f"[{i}/{len(planned)}] {p.name} {_describe(p, s)}: {p.workdir}", flush=True)
  t0 = time.perf_counter()
  while not dry_run:
    others_running = False
    for i, p in enumerate(planned, 1):
      s = state(p.workdir, stale_s)
      if s.kind in ("finished", "failed", "corrupt"):
        continue
      claim = (claims.acquire(p.workdir, worker, stale_s, heartbeat_s)
               if main and s.kind != "running" else None)
      if not _agree(claim is not None):
        others_running = True
        continue
      print(f"[{i}/{len(planned)}] {p.name} {_describe(p, s)}: {p.workdir}", flush=True)
      members = [(p, claim)]
      if seed_groups:
        members += _claim_seeds(planned, p, worker, stale_s, heartbeat_s)
      _train(members, progress, heartbeat_s, repair)
      print(f"  {time.perf_counter() - t0:.0f} s so far", flush=True)
    if not (wait and _agree(others_running)):
      break
    time.sleep(min(heartbeat_s, stale_s / 4))  # until their claims finish or go stale
  states = [(p, state(p.workdir, stale_s)) for p in planned]
  return SweepResult(str(root), tuple(planned), tuple(s.record for _, s in states if s.record),
                     tuple((p.name, str(s.failure.get("error", "?")))
                           for p, s in states if s.kind == "failed"))


def _claim_seeds(planned: Sequence[PlannedRun], p: PlannedRun, worker: str, stale_s: float,
                 heartbeat_s: float) -> list[tuple[PlannedRun, claims.Claim]]:
  """The other runs of `planned` that differ from `p` only in seed, neither finished, failed nor
  claimed, each with this worker's new claim on it (a run another worker claims first is left
  to it)."""
  out = []
  for q in planned:
    if q is p or group.differences([p.config, q.config]):
      continue
    if state(q.workdir, stale_s).kind in ("finished", "failed", "corrupt", "running"):
      continue
    claim = claims.acquire(q.workdir, worker, stale_s, heartbeat_s)
    if claim is not None:
      print(f"  with {q.name} (seed {q.config.seed}) as one program: {q.workdir}", flush=True)
      out.append((q, claim))
  return out


def _train(members: Sequence[tuple[PlannedRun, claims.Claim | None]], progress: bool,
           heartbeat_s: float, repair: bool = False):
  """Trains the claimed runs (claims None on processes other than 0): one alone (loop.run), or
  several seeds of one shape as one program (group.train_group), beating each claim and
  recording a failure for each when training raises; a full or read-only disk is raised as its
  OSError (paths.disk_error), recording nothing."""
  with contextlib.ExitStack() as stack:
    for p, claim in members:
      if claim:
        stack.enter_context(claims.Heartbeat(p.workdir, claim, heartbeat_s))
    try:
      if len(members) == 1:
        (p, _), = members
        losses = [loop.run(p.config, p.workdir, progress=progress, repair=repair).loss]
      else:
        losses = [r["loss"] for r in group.train_group(
            [p.config for p, _ in members], [p.workdir for p, _ in members], progress=progress,
            repair=repair)]
      print("  loss " + " ".join(f"{loss:.4f}" for loss in losses), flush=True)
    except Exception as e:  # pylint: disable=broad-except
      disk = paths.disk_error(e, members[0][0].workdir)
      if disk is not None:  # not the run's fault, and every later run would fail the same way
        raise disk from None
      # A NaN, a bad config, a bug: recorded, and the sweep goes on with the other runs.
      for p, claim in members:
        if claim:
          try:
            claims.record_failure(p.workdir, claim, e)
          except OSError as written:
            if paths.disk_error(written) is None:
              raise
            raise written from None
      print(f"  failed: {type(e).__name__}: {e}\n" + "".join(
          traceback.format_exception(e)[-6:]), flush=True)


def _describe(p: PlannedRun, s: RunState) -> str:
  spec = loop.arch_spec(p.config)
  head = f"(N={spec.non_embedding_params:,}, {loop.total_steps(p.config)} steps) {s.kind}"
  if s.kind == "stale":
    return head + (f", taking over an unreadable claim ({s.note})" if s.note else
                   f", taking over from {s.claim.worker}")
  if s.kind == "failed":
    return head + f" ({s.failure.get('error', '?')}; --retry-failed retries it)"
  if s.kind == "corrupt":
    return head + f" ({s.note}; --retry-failed retrains it)"
  if s.kind == "running":
    return head + f" on {s.claim.worker}"
  return head


@dataclasses.dataclass(frozen=True)
class SweepStatus:
  """A sweep's runs and progress: `rows` (one dict per run: name, state, worker, since_s,
  heartbeat_s, step, loss, error), counts per state, and the estimated seconds left (None before
  any run finished): the unfinished runs' training FLOPs at the median FLOP rate of the finished
  ones, shared by the live workers (at least one)."""

  rows: list[dict]
  counts: dict[str, int]
  workers: int
  eta_s: float | None

  def summary(self) -> str:
    """The runs as a table (times as s, min or h), then the counts, workers and time left."""
    rows = [{**r, "since_s": _age(r["since_s"]), "heartbeat_s": _age(r["heartbeat_s"]),
             "step": "" if r["step"] is None else r["step"],
             "loss": "" if r["loss"] is None else f"{r['loss']:.4f}"} for r in self.rows]
    done = self.counts.get("finished", 0)
    return (format_table(rows, ["run", "state", "worker", "since_s", "heartbeat_s", "step",
                                "loss", "error"])
            + f"\n{done}/{len(self.rows)} finished; "
            + ", ".join(f"{n} {k}" for k, n in self.counts.items())
            + f"; {self.workers} live worker(s); " + (
                f"about {_age(self.eta_s)} left at the finished runs' FLOP rate"
                if self.eta_s is not None else "time left: unknown until a run finishes"))


def _age(seconds: float | None) -> str:
  """A duration for people: seconds up to 90, minutes up to 90, then hours; "" for None."""
  return "" if seconds is None else f"{seconds / 3600:.1f} h" if seconds >= 5400 else (
      f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s")


def status(sweep: ml_collections.ConfigDict, root: str, overrides: Sequence[str] = (),
           stale_s: float = claims.STALE_S) -> SweepStatus:
  """Where every run of `sweep` under `root` stands (reads only; trains nothing)."""
  _check_arguments(sweep, root, "sweep.status")
  inputs.argument(stale_s, "stale_s", "positive", "sweep.status")
  now, rows, rates, left, workers = time.time(), [], [], 0.0, set()
  planned = plan(sweep, root, overrides)
  for p, (spec, tokens, seq_len) in zip(planned, estimate.runs_of(p.config for p in planned)):
    s, t = state(p.workdir, stale_s), p.config.train
    flops = metrics_lib.train_flops_per_token(spec, seq_len)
    step = _last_step(p.workdir) if s.kind in ("running", "stale", "started") else None
    row = {"run": p.name, "state": s.kind, "worker": s.claim.worker if s.claim else "",
           "since_s": round(now - s.claim.started) if s.claim and s.claim.started else None,
           "heartbeat_s": round(now - s.claim.heartbeat) if s.claim and s.claim.heartbeat
           else None, "step": step, "loss": s.record.loss if s.record else None,
           "error": (s.failure or {}).get("error", s.note)[:80]}
    rows.append(row)
    if s.kind == "finished" and s.record.tokens_per_s:
      rates.append(flops * s.record.tokens_per_s)
    elif s.kind not in ("finished", "failed", "corrupt"):
      done = (step or 0) * t.batch_size * t.seq_len
      left += flops * max(tokens - done, 0)
    if s.kind == "running":
      workers.add(s.claim.worker)
  counts = dict(collections.Counter(r["state"] for r in rows))
  eta = left / float(np.median(rates)) / max(len(workers), 1) if rates else None
  return SweepStatus(rows, counts, len(workers), eta)


def _last_step(workdir) -> int | None:
  """The newest step in the run's metrics log (None without one)."""
  log = RunDir(workdir).metrics
  if not paths.exists(log):
    return None
  try:
    steps = [r.get("step", 0) for r in metrics_lib.read(log)]
  except ValueError:  # a line cut short by a kill
    return None
  return max(steps) if steps else None
