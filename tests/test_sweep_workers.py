"""Many `lawsearch sweep` workers on one root, as separate processes: they split the runs through
claims (every run trained exactly once), take over the run of a SIGKILLed worker once its
heartbeat stops (resuming from its checkpoint), record a failing run once instead of retrying it
forever, and report corrupt claims and records instead of dying on them."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import crashing

from lawsearch import cli, configlib
from lawsearch.errors import UserError
from lawsearch.rundir import RunDir
from lawsearch.train import claims, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/sweep.py:runlocal,data=synthetic"
RUNS = list(configlib.load(CONFIG).runs[:4])
OVERRIDES = ["train.steps=4", "train.eval_batches=1", "train.checkpoint_every=2",
             "train.log_every=1"]
FAST = ["--heartbeat-s", "0.5", "--stale-s", "4"]  # a stopped heartbeat is stale after 4 s


def _sweep_args(root, runs=RUNS):
  return [f"--config={CONFIG}", f"--config.runs={runs!r}", "--root", str(root), "--no-progress",
          *[a for o in OVERRIDES for a in ("--override", o)]]


def _worker(root, name, *extra, env=None, runs=RUNS):
  cmd = [sys.executable, "-m", "lawsearch.cli", "sweep", *_sweep_args(root, runs), "--worker",
         name, *FAST, *extra]
  return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu",
                                              **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _trained(output: str) -> list[str]:
  """The runs a worker's output says it trained (its "[i/n] NAME ... new|started|stale" lines)."""
  return re.findall(r"^\[\d+/\d+\] (\S+) \(N=[\d,]+, \d+ steps\) (?:new|started|stale)",
                    output, re.M)


def _planned(root, runs=RUNS):
  config = configlib.load(CONFIG, [f"--config.runs={runs!r}"])
  return sweep.plan(config, str(root), OVERRIDES)


def test_concurrent_workers_train_every_run_exactly_once(tmp_path):
  # Three workers on four runs: all start together, and one of them claims a second run.
  procs = [_worker(tmp_path, f"w{i}") for i in range(3)]
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), "\n".join(o[-2000:] for o in outputs)
  trained = [name for o in outputs for name in _trained(o)]
  planned = _planned(tmp_path)
  assert sorted(trained) == sorted(p.name for p in planned)  # each run by exactly one worker
  for p in planned:
    state = sweep.state(p.workdir)
    assert state.kind == "finished" and state.claim is None
    assert sorted(os.listdir(os.path.join(p.workdir, RunDir.CLAIMS))) == ["0001.json"]
    assert claims.latest(p.workdir).released


def test_a_killed_workers_run_is_taken_over_and_resumed(tmp_path):
  runs = RUNS[:2]
  killed = _worker(tmp_path, "doomed", env=crashing.at_step(3), runs=runs)
  out = killed.communicate(timeout=600)[0]
  assert killed.returncode == -signal.SIGKILL, out[-2000:]
  first = _planned(tmp_path, runs)[0]
  assert claims.latest(first.workdir).worker == "doomed"  # its claim stays until it goes stale

  rescuer = _worker(tmp_path, "rescuer", runs=runs)
  out = rescuer.communicate(timeout=600)[0]
  assert rescuer.returncode == 0, out[-3000:]
  assert f"{first.name} (N=" in out and "taking over from doomed" in out
  assert "resuming at step 2" in out  # the doomed worker's step-2 checkpoint
  for p in _planned(tmp_path, runs):
    assert sweep.state(p.workdir).kind == "finished"
  attempts = sorted(os.listdir(os.path.join(first.workdir, RunDir.CLAIMS)))
  assert attempts == ["0001.json", "0002.json"]
  assert claims.latest(first.workdir).worker == "rescuer"


def test_failures_are_recorded_once_and_corrupt_records_reported(tmp_path, capsys):
  config = configlib.load(CONFIG, [f"--config.runs={RUNS[:3]!r}"])
  done = sweep.run(config, str(tmp_path), overrides=OVERRIDES, progress=False, heartbeat_s=0.5)
  assert len(done.records) == 3
  broken, corrupt, unclaimed = sweep.plan(config, str(tmp_path), OVERRIDES)

  # A run whose checkpoint is unreadable fails on resume: recorded once, then skipped.
  os.remove(os.path.join(broken.workdir, "result.json"))
  for dirpath, _, files in os.walk(os.path.join(broken.workdir, "checkpoints", "4", "state")):
    for name in files:
      with open(os.path.join(dirpath, name), "wb") as f:
        f.write(b"\x00garbage")
  # A result record cut short, and a claim that is not JSON.
  with open(os.path.join(corrupt.workdir, "result.json"), "w") as f:
    f.write('{"loss": 2.')
  os.remove(os.path.join(unclaimed.workdir, "result.json"))
  bad_claim = os.path.join(unclaimed.workdir, RunDir.CLAIMS, "0002.json")
  with open(bad_claim, "w") as f:
    f.write("not json")
  assert sweep.state(unclaimed.workdir).kind == "running"  # unreadable, but written just now
  os.utime(bad_claim, (time.time() - 1000, time.time() - 1000))  # ... and long ago

  capsys.readouterr()
  assert cli.main(["sweep", *_sweep_args(tmp_path, RUNS[:3]), "--status"]) == 0
  table = capsys.readouterr().out
  assert re.search(r"corrupt .*result\.json: not JSON \(JSONDecodeError", table)
  assert re.search(r"stale .*JSONDecodeError", table)
  assert "1/3 finished" not in table and "0/3 finished" in table

  again = sweep.run(config, str(tmp_path), overrides=OVERRIDES, progress=False, heartbeat_s=0.5)
  out = capsys.readouterr().out
  assert "failed: UserError" in out and "corrupt or unreadable" in out
  assert "taking over an unreadable claim" in out
  assert [r.run_dir for r in again.records] == [unclaimed.workdir]  # taken over, resumed, done
  assert [name for name, _ in again.failed] == [broken.name]
  failed = json.load(open(os.path.join(broken.workdir, RunDir.FAILED)))
  assert "corrupt or unreadable" in failed["error"] and failed["attempt"] == 2
  assert sweep.state(broken.workdir).kind == "failed"
  assert sweep.state(corrupt.workdir).kind == "corrupt"

  sweep.run(config, str(tmp_path), overrides=OVERRIDES, progress=False)  # not retried
  assert len(os.listdir(os.path.join(broken.workdir, RunDir.CLAIMS))) == 2
  assert "failed (UserError" in capsys.readouterr().out

  retried = sweep.run(config, str(tmp_path), overrides=OVERRIDES, progress=False,
                      retry_failed=True)
  assert len(os.listdir(os.path.join(broken.workdir, RunDir.CLAIMS))) == 3  # tried once more
  assert corrupt.workdir in [r.run_dir for r in retried.records]  # retrained from its checkpoint
  assert sweep.state(broken.workdir).kind == "failed"


def _claim(workdir, doc, age_of_file_s=0.0):
  """Writes claim attempt 1 of `workdir` holding `doc` (a dict, or text), its file's mtime
  `age_of_file_s` ago."""
  path = os.path.join(workdir, RunDir.CLAIMS, "0001.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(doc if isinstance(doc, str) else json.dumps(doc))
  os.utime(path, (time.time() - age_of_file_s,) * 2)


def test_staleness_is_the_claimants_own_and_clocks_are_not_trusted_blindly(tmp_path):
  now = time.time()
  live = dict(attempt=1, worker="w", started=now - 100, heartbeat=now - 100)
  # The claimant beats every 30 s and counts as dead after 300 s: a reader's --stale-s 5 does not
  # take its run over; a claim from before limits were recorded is judged by the reader's.
  _claim(tmp_path, {**live, "heartbeat_s": 30.0, "stale_s": 300.0})
  assert claims.latest(tmp_path).live(stale_s=5)
  _claim(tmp_path, live)
  assert not claims.latest(tmp_path).live(stale_s=5) and claims.latest(tmp_path).live(300)
  # A heartbeat an hour in the future (a claimant's clock ahead): the file's mtime decides.
  future = {**live, "heartbeat": now + 3600, "stale_s": 300.0}
  _claim(tmp_path, future, age_of_file_s=1000)
  assert not claims.latest(tmp_path).live(stale_s=300)
  _claim(tmp_path, future, age_of_file_s=10)
  assert claims.latest(tmp_path).live(stale_s=300)
  # A claim that cannot be read is a live worker's until its file is older than the limit.
  _claim(tmp_path, "{cut sh", age_of_file_s=10)
  assert claims.latest(tmp_path).corrupt and claims.latest(tmp_path).live(stale_s=300)
  _claim(tmp_path, "{cut sh", age_of_file_s=1000)
  assert not claims.latest(tmp_path).live(stale_s=300)
  assert claims.acquire(tmp_path, "next", stale_s=300, heartbeat_s=30).attempt == 2
  assert json.loads(open(os.path.join(tmp_path, RunDir.CLAIMS, "0002.json")).read())[
      "stale_s"] == 300


def test_a_stale_limit_a_late_beat_would_cross_is_refused(tmp_path, capsys):
  config = configlib.load(CONFIG, [f"--config.runs={RUNS[:1]!r}"])
  with pytest.raises(UserError, match="above twice --heartbeat-s"):
    sweep.run(config, str(tmp_path), overrides=OVERRIDES, heartbeat_s=60, stale_s=3)
  assert cli.main(["sweep", *_sweep_args(tmp_path, RUNS[:1]), "--heartbeat-s", "60",
                   "--stale-s", "100"]) == 2
  err = capsys.readouterr().err
  assert "above twice --heartbeat-s" in err and "Traceback" not in err
  assert not os.listdir(tmp_path)  # refused before anything was claimed


def test_a_sweep_whose_runs_fail_exits_non_zero_with_one_line_each(tmp_path):
  worker = _worker(tmp_path, "w", "--override", "optimizer.peak_lr=1e30", runs=RUNS[:2])
  out = worker.communicate(timeout=600)[0]
  assert worker.returncode == 1, out[-2000:]
  summary = out[out.index("lawsearch sweep: 2 run(s) failed"):].splitlines()
  assert len(summary) == 3 and all("NonFiniteLossError" in line for line in summary[1:])
