"""Sweeps on a real SLURM (tests/slurm_cluster.py: munged, slurmctld and slurmd on this machine):
a sweep submitted as a job array trains every run exactly once; a two-task srun run of 4 CPU
devices each is one JAX program matching the one-process run of 8 devices; a cancelled worker's
run is taken over and resumed by the resubmitted array."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from slurm_cluster import SlurmCluster
from lawsearch import configlib
from lawsearch.rundir import RunDir
from lawsearch.train import claims, loop, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = "configs/sweep.py:runlocal,data=synthetic"
TRAIN = "configs/train.py:preset=nano,data=synthetic"
TRAIN_ARGS = ["--config.train.steps=4", "--config.train.batch_size=8",
              "--config.train.seq_len=32", "--config.train.log_every=1",
              "--config.train.checkpoint_every=0", "--config.train.eval_every=0",
              "--config.train.eval_batches=1", "--config.model.max_seq_len=32"]

REASON = SlurmCluster.unavailable()
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON or "SLURM available")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
  c = SlurmCluster.start(str(tmp_path_factory.mktemp("slurm")))
  yield c
  c.stop()


def _submit(cluster, root, runs, overrides, *extra):
  cmd = [sys.executable, "-m", "lawsearch.cli", "sweep", f"--config={SWEEP}",
         f"--config.runs={runs!r}", "--root", str(root), "--slurm-logs", f"{root}/logs",
         "--slurm", "--heartbeat-s", "0.5", "--stale-s", "4", *extra,
         *[a for o in overrides for a in ("--override", o)]]
  done = cluster.run(*cmd, cwd=ROOT, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  return re.search(r"submitted job array (\d+)", done.stdout).group(1)


def _logs(root) -> str:
  folder = os.path.join(root, "logs")
  return "".join(open(os.path.join(folder, f)).read() for f in sorted(os.listdir(folder))
                 if f.endswith(".out"))


def test_a_job_array_sweep_trains_every_run_exactly_once(cluster, tmp_path):
  runs = list(configlib.load(SWEEP).runs[:3])
  overrides = ["train.steps=2", "train.eval_batches=1"]
  job = _submit(cluster, tmp_path, runs, overrides, "--workers", "2")
  cluster.wait(job)
  planned = sweep.plan(configlib.load(SWEEP, [f"--config.runs={runs!r}"]), str(tmp_path),
                       overrides)
  workers = set()
  for p in planned:
    assert sweep.state(p.workdir).kind == "finished", _logs(tmp_path)[-3000:]
    assert os.listdir(os.path.join(p.workdir, RunDir.CLAIMS)) == ["0001.json"]
    workers.add(claims.latest(p.workdir).worker.split("@")[0])
  assert workers <= {f"slurm-{job}_0", f"slurm-{job}_1"} and workers
  assert len(re.findall(r"^\[\d/3\] \S+ .* new: ", _logs(tmp_path), re.M)) == 3  # once each


def test_a_two_task_srun_run_is_one_program_matching_one_process_of_eight(cluster, tmp_path):
  reference = str(tmp_path / "one")
  loop.train(configlib.load(TRAIN, TRAIN_ARGS), reference, progress=False)  # 8 CPU devices
  workdir = str(tmp_path / "two")
  env = {**cluster.env, "XLA_FLAGS": os.environ["XLA_FLAGS"].replace("device_count=8",
                                                                     "device_count=4")}
  done = subprocess.run(
      ["srun", "-n", "2", "--kill-on-bad-exit=1", sys.executable, "-m", "lawsearch.cli",
       "train", f"--config={TRAIN}", *TRAIN_ARGS, "--no-progress", f"--workdir={workdir}"],
      cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "'data': 1, 'fsdp': 8" in done.stdout  # one mesh over both tasks' devices

  def losses(w):
    return {r["step"]: r["loss"] for r in map(json.loads, open(f"{w}/metrics.jsonl"))
            if "loss" in r}
  got, want = losses(workdir), losses(reference)
  assert sorted(got) == sorted(want) == [1, 2, 3, 4]
  np.testing.assert_allclose([got[s] for s in sorted(got)], [want[s] for s in sorted(want)],
                             rtol=1e-6)


def test_a_cancelled_worker_is_resumed_by_the_resubmitted_array(cluster, tmp_path):
  runs = list(configlib.load(SWEEP).runs[:1])
  overrides = ["train.steps=80", "train.checkpoint_every=20", "train.log_every=1",
               "train.eval_batches=1"]
  (run,) = sweep.plan(configlib.load(SWEEP, [f"--config.runs={runs!r}"]), str(tmp_path),
                      overrides)
  first = _submit(cluster, tmp_path, runs, overrides, "--workers", "1")
  metrics, deadline = os.path.join(run.workdir, "metrics.jsonl"), time.monotonic() + 300
  while not (os.path.exists(metrics) and len(open(metrics).readlines()) >= 45):
    assert time.monotonic() < deadline, _logs(tmp_path)[-3000:]
    time.sleep(0.5)
  assert cluster.run("scancel", first).returncode == 0  # mid-run, past the step-40 checkpoint
  cluster.wait(first)
  assert sweep.state(run.workdir, stale_s=4).kind in ("running", "stale")  # not released

  second = _submit(cluster, tmp_path, runs, overrides, "--workers", "1")
  cluster.wait(second)
  log = _logs(tmp_path)
  assert sweep.state(run.workdir).kind == "finished", log[-3000:]
  assert f"taking over from slurm-{first}_0" in log
  assert re.search(r"resuming at step (40|60)\b", log), log[-3000:]
  attempts = [json.load(open(os.path.join(run.workdir, RunDir.CLAIMS, f)))["worker"]
              for f in sorted(os.listdir(os.path.join(run.workdir, RunDir.CLAIMS)))]
  assert [w.split("@")[0] for w in attempts] == [f"slurm-{first}_0", f"slurm-{second}_0"]


def test_a_two_task_worker_claims_once_and_trains_as_one_program(cluster, tmp_path):
  # Each array task is a two-process JAX program (srun -n 2 inside the job, 4 CPU devices each):
  # process 0 claims and records, and both train the run it picked.
  runs = list(configlib.load(SWEEP).runs[:2])
  overrides = ["train.steps=2", "train.eval_batches=1"]
  xla = os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=4")
  cmd = [sys.executable, "-m", "lawsearch.cli", "sweep", f"--config={SWEEP}",
         f"--config.runs={runs!r}", "--root", str(tmp_path), "--slurm-logs", f"{tmp_path}/logs",
         "--slurm", "--workers", "1", "--config.slurm.tasks_per_node=2",
         *[a for o in overrides for a in ("--override", o)]]
  done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **cluster.env, "XLA_FLAGS": xla},
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  cluster.wait(re.search(r"submitted job array (\d+)", done.stdout).group(1))
  log = _logs(tmp_path)
  for p in sweep.plan(configlib.load(SWEEP, [f"--config.runs={runs!r}"]), str(tmp_path),
                      overrides):
    assert sweep.state(p.workdir).kind == "finished", log[-3000:]
    assert os.listdir(os.path.join(p.workdir, RunDir.CLAIMS)) == ["0001.json"]
  assert log.count("'fsdp': 8") == 2  # one 8-device mesh per run, printed by process 0 only


def test_a_log_directory_with_spaces_and_quotes_reaches_sbatch_whole(cluster, tmp_path):
  # #SBATCH lines are read by sbatch, not bash: the log path is quoted for sbatch's own parser.
  from lawsearch.train import slurm  # pylint: disable=import-outside-toplevel

  log_dir = tmp_path / 'logs with "quotes" and spaces'
  log_dir.mkdir()
  script = slurm.sbatch_script(slurm.SlurmResources(workers=1, partition="debug"), config=SWEEP,
                               root=str(tmp_path / "root"), log_dir=str(log_dir))
  path = tmp_path / "job.sbatch"
  path.write_text(script.rsplit("srun ", 1)[0] + "echo the-log-landed\n")  # only the log matters
  done = cluster.run("sbatch", "--parsable", str(path), cwd=str(tmp_path), timeout=60)
  assert done.returncode == 0, done.stderr
  cluster.wait(done.stdout.strip().split(";")[0], timeout=120)
  logs = os.listdir(log_dir)
  assert len(logs) == 1 and "the-log-landed" in (log_dir / logs[0]).read_text()
