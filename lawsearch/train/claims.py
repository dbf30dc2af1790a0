"""Who trains which run: claims that many sweep workers share without a coordinator.

A worker claims a run directory before training it by creating `<workdir>/claims/NNNN.json`
(attempt NNNN) with `paths.create`, which succeeds for exactly one process even when many try at
once, on a shared filesystem or in a bucket. While it trains, a heartbeat thread rewrites its
claim's `heartbeat` (seconds since the epoch) every `heartbeat_s`. The newest attempt is the
run's claim:
  - live:     not released and its heartbeat younger than `stale_s`: others skip the run;
  - stale:    the heartbeat stopped (the worker was killed, its node lost): the next worker
              creates attempt NNNN+1 and resumes the run from its last checkpoint;
  - released: the claimant finished the run or recorded its failure.
A claim that cannot be read (corrupt) is judged by its file's modification time and reported. A run
whose training raised is recorded in `<workdir>/failed.json` (the error, the worker, the attempt)
and is not retried until a sweep runs with retry_failed. Staleness compares the claimant's clock
with the reader's: keep `stale_s` well above the hosts' clock skew and a few heartbeats long.

Imports no JAX.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import socket
import threading
import time
from typing import Any

from lawsearch import inputs, paths, rundir
from lawsearch.errors import UserError
from lawsearch.rundir import RunDir

HEARTBEAT_S = 30.0
STALE_S = 300.0
# How far ahead of this host's clock a claimant's heartbeat may be before it is distrusted (and
# the claim file's modification time, by the store's clock, is used instead).
CLOCK_SKEW_S = 60.0


def check_timing(heartbeat_s: float, stale_s: float) -> None:
  """UserError unless a claim would survive a late heartbeat: stale_s > 2 * heartbeat_s > 0."""
  if not (0 < heartbeat_s and stale_s > 2 * heartbeat_s):
    raise UserError(f"--stale-s {stale_s:g} with --heartbeat-s {heartbeat_s:g}: a live worker's "
                    "claim would look dead after one late beat; give --stale-s above twice "
                    "--heartbeat-s (the defaults are 300 and 30)")


def worker_id() -> str:
  """This process's name among the workers: $LAWSEARCH_WORKER, else SLURM's job and array task,
  else host:pid."""
  if os.environ.get("LAWSEARCH_WORKER"):
    return os.environ["LAWSEARCH_WORKER"]
  host = socket.gethostname()
  job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
  if job:
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"slurm-{job}" + (f"_{task}" if task else "") + f"@{host}:{os.getpid()}"
  return f"{host}:{os.getpid()}"


@dataclasses.dataclass(frozen=True)
class Claim:
  """One attempt at a run: who, since when, its last sign of life (seconds since the epoch), and
  the claimant's heartbeat period and stale limit (0: a claim written before they were recorded).
  mtime (the file's modification time) and corrupt (why the file could not be read) are read,
  never written."""

  attempt: int
  worker: str
  started: float
  heartbeat: float
  released: bool = False
  heartbeat_s: float = 0.0
  stale_s: float = 0.0
  mtime: float = 0.0
  corrupt: str = ""

  def live(self, stale_s: float, now: float | None = None) -> bool:
    """Whether the claimant is alive: its last sign of life is younger than its own stale limit
    (`stale_s`, the reader's, for claims that do not record one). A heartbeat from more than
    CLOCK_SKEW_S in the future, or an unreadable claim, is judged by the file's mtime."""
    if self.released:
      return False
    now = time.time() if now is None else now
    last = self.mtime if self.corrupt or self.heartbeat > now + CLOCK_SKEW_S else self.heartbeat
    return now - last < (self.stale_s or stale_s)

  def to_json(self) -> str:
    doc = dataclasses.asdict(self)
    doc.pop("corrupt")
    doc.pop("mtime")
    return json.dumps(doc)


def _file(workdir, attempt: int):
  return RunDir(workdir).claims / f"{attempt:04d}.json"


def latest(workdir) -> Claim | None:
  """The run's newest claim (None when nobody ever claimed it)."""
  folder = RunDir(workdir).claims
  if not paths.is_dir(folder):
    return None
  attempts = sorted(int(f.stem) for f in folder.iterdir() if f.stem.isdigit() and
                    f.suffix == ".json")
  if not attempts:
    return None
  attempt, file = attempts[-1], _file(workdir, attempts[-1])
  try:
    mtime = paths.mtime(file)
    doc = rundir.read_file(file, "claim")
    return Claim(attempt=attempt, worker=doc["worker"], started=doc["started"],
                 heartbeat=doc["heartbeat"], released=doc.get("released") is True,
                 heartbeat_s=_seconds(doc.get("heartbeat_s")),
                 stale_s=_seconds(doc.get("stale_s")), mtime=mtime)
  except FileNotFoundError:  # deleted between the listing and the read
    return None
  except inputs.DamagedFile as e:
    if e.problem == inputs.MISSING:
      return None
    return Claim(attempt, "?", 0.0, 0.0, mtime=mtime, corrupt=e.problem[:200])


def _seconds(value) -> float:
  """A claim's recorded period or limit: a positive finite number, else 0 (not recorded)."""
  return float(value) if inputs.ARGUMENTS["positive"][0](value) else 0.0


def acquire(workdir, worker: str, stale_s: float = STALE_S,
            heartbeat_s: float = HEARTBEAT_S) -> Claim | None:
  """A new claim on the run for `worker` (beating every `heartbeat_s`, stale after `stale_s`), or
  None when another worker's claim is live or another worker won the race for the next
  attempt."""
  current = latest(workdir)
  if current is not None and current.live(stale_s):
    return None
  now = time.time()
  claim = Claim(attempt=current.attempt + 1 if current else 1, worker=worker, started=now,
                heartbeat=now, heartbeat_s=heartbeat_s, stale_s=stale_s)
  return claim if paths.create(_file(workdir, claim.attempt), claim.to_json()) else None


def beat(workdir, claim: Claim) -> Claim:
  """The claim with a fresh heartbeat, written (only its own claimant writes an attempt)."""
  claim = dataclasses.replace(claim, heartbeat=time.time())
  paths.write_text(_file(workdir, claim.attempt), claim.to_json())
  return claim


def release(workdir, claim: Claim) -> None:
  """Marks the claim released; on a full disk, where it cannot be rewritten, removes it (which
  also frees the run for the next worker)."""
  path = _file(workdir, claim.attempt)
  try:
    paths.write_text(path, dataclasses.replace(claim, heartbeat=time.time(),
                                               released=True).to_json())
  except OSError as e:
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
      raise
    paths.remove(path)


class Heartbeat:
  """Context manager: beats `claim` every `every_s` seconds in a daemon thread, and releases it on
  exit (a killed process stops beating, and its claim goes stale)."""

  def __init__(self, workdir, claim: Claim, every_s: float = HEARTBEAT_S):
    self.workdir, self.claim, self.every_s = workdir, claim, every_s
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True, name="lawsearch-heartbeat")

  def _run(self):
    while not self._stop.wait(self.every_s):
      try:
        self.claim = beat(self.workdir, self.claim)
      except OSError as e:  # a store hiccup: the next beat retries; staleness needs many misses
        print(f"lawsearch sweep: heartbeat of {self.workdir} failed ({e}); retrying", flush=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, exc_type, exc, tb):
    self._stop.set()
    self._thread.join()
    try:
      release(self.workdir, self.claim)
    except OSError:
      if exc is None:
        raise
      # The error under way (most likely the same read-only or full disk) is the one reported;
      # this claim goes stale after its limit and the run is taken over then.


def record_failure(workdir, claim: Claim, error: BaseException) -> dict[str, Any]:
  """Writes <workdir>/failed.json: the error of `claim`'s attempt."""
  doc = {"error": f"{type(error).__name__}: {error}"[:2000], "worker": claim.worker,
         "attempt": claim.attempt, "time": time.time()}
  paths.write_text(RunDir(workdir).failed, json.dumps(doc, indent=1) + "\n")
  return doc


def failure(workdir) -> dict[str, Any] | None:
  """The run's failed.json (a corrupt one as {"error": "unreadable failed.json ..."}), or None."""
  try:
    return rundir.read_file(RunDir(workdir).failed, "failed", missing_ok=True)
  except inputs.DamagedFile as e:
    return {"error": f"unreadable {RunDir.FAILED} ({e.problem})"}


def clear_failure(workdir) -> None:
  paths.remove(RunDir(workdir).failed)
