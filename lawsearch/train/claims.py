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
A claim that cannot be read (corrupt) counts as stale and is reported. A run whose training
raised is recorded in `<workdir>/failed.json` (the error, the worker, the attempt) and is not
retried until a sweep runs with retry_failed. Staleness compares the claimant's clock with the
reader's: keep `stale_s` well above the hosts' clock skew and a few heartbeats long.

Imports no JAX.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
from typing import Any

from lawsearch import paths
from lawsearch.rundir import RunDir

HEARTBEAT_S = 30.0
STALE_S = 300.0


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
  """One attempt at a run: who, since when, and its last sign of life (seconds since the epoch)."""

  attempt: int
  worker: str
  started: float
  heartbeat: float
  released: bool = False
  corrupt: str = ""  # why the claim file could not be read ("" when it could)

  def live(self, stale_s: float, now: float | None = None) -> bool:
    return (not self.released and not self.corrupt
            and (time.time() if now is None else now) - self.heartbeat < stale_s)

  def to_json(self) -> str:
    doc = dataclasses.asdict(self)
    doc.pop("corrupt")
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
  attempt = attempts[-1]
  try:
    doc = json.loads(paths.read_text(_file(workdir, attempt)))
    return Claim(attempt=attempt, worker=str(doc["worker"]), started=float(doc["started"]),
                 heartbeat=float(doc["heartbeat"]), released=bool(doc.get("released", False)))
  except (ValueError, KeyError, TypeError) as e:
    return Claim(attempt, "?", 0.0, 0.0, corrupt=f"{type(e).__name__}: {e}"[:200])
  except FileNotFoundError:  # deleted between the listing and the read
    return None


def acquire(workdir, worker: str, stale_s: float = STALE_S) -> Claim | None:
  """A new claim on the run for `worker`, or None when another worker's claim is live or another
  worker won the race for the next attempt."""
  current = latest(workdir)
  if current is not None and current.live(stale_s):
    return None
  now = time.time()
  claim = Claim(attempt=current.attempt + 1 if current else 1, worker=worker, started=now,
                heartbeat=now)
  return claim if paths.create(_file(workdir, claim.attempt), claim.to_json()) else None


def beat(workdir, claim: Claim) -> Claim:
  """The claim with a fresh heartbeat, written (only its own claimant writes an attempt)."""
  claim = dataclasses.replace(claim, heartbeat=time.time())
  paths.write_text(_file(workdir, claim.attempt), claim.to_json())
  return claim


def release(workdir, claim: Claim) -> None:
  paths.write_text(_file(workdir, claim.attempt),
                   dataclasses.replace(claim, heartbeat=time.time(), released=True).to_json())


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

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    release(self.workdir, self.claim)


def record_failure(workdir, claim: Claim, error: BaseException) -> dict[str, Any]:
  """Writes <workdir>/failed.json: the error of `claim`'s attempt."""
  doc = {"error": f"{type(error).__name__}: {error}"[:2000], "worker": claim.worker,
         "attempt": claim.attempt, "time": time.time()}
  paths.write_text(RunDir(workdir).failed, json.dumps(doc, indent=1) + "\n")
  return doc


def failure(workdir) -> dict[str, Any] | None:
  """The run's failed.json (a corrupt one as {"error": "unreadable failed.json ..."}), or None."""
  path = RunDir(workdir).failed
  if not paths.exists(path):
    return None
  try:
    doc = json.loads(paths.read_text(path))
    return doc if isinstance(doc, dict) else {"error": f"unreadable {RunDir.FAILED}: not an object"}
  except ValueError as e:
    return {"error": f"unreadable {RunDir.FAILED} ({e})"}


def clear_failure(workdir) -> None:
  paths.remove(RunDir(workdir).failed)
