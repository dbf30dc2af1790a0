"""`lawsearch sweep --slurm` without a cluster: the workers' arguments in the job array's script,
and what is printed (tests/test_slurm.py submits to a real SLURM)."""

import dataclasses
import os
import shlex

from lawsearch import cli, configlib
from lawsearch.train import slurm

SWEEP = "configs/sweep.py:runlocal,data=synthetic"


def test_workers_get_the_sweeps_arguments_and_not_the_submissions_own(tmp_path):
  sweep = configlib.load(SWEEP, ["--config.slurm.time=1:00:00"])
  job = slurm.sweep_job(sweep, config=SWEEP, root="/r", log_dir=str(tmp_path / "logs"),
                        heartbeat_s=0.5, stale_s=4.0, workers=3, overrides=["train.steps=2"],
                        config_overrides=["--config.runs=['a']", "--config.slurm.time=1:00:00"],
                        retry_failed=True, seed_groups=True, script_only=True)
  assert job.job_id is None and not (tmp_path / "logs").exists()  # nothing submitted or written
  lines = job.script.splitlines()
  assert "#SBATCH --array=0-2" in lines and "#SBATCH --time=1:00:00" in lines
  worker = shlex.split(lines[-1])
  assert worker[worker.index("sweep"):] == [
      "sweep", f"--config={SWEEP}", "--root", "/r", "--no-progress", "--override",
      "train.steps=2", "--config.runs=['a']", "--heartbeat-s", "0.5", "--stale-s", "4",
      "--retry-failed", "--seed-groups"]
  assert job.summary() + "\n" == job.script  # --slurm-script prints the script as it is


def test_a_submitted_array_says_its_id_workers_logs_and_how_to_watch_it():
  job = slurm.sweep_job(configlib.load(SWEEP), config=SWEEP, root="/r", log_dir="logs",
                        heartbeat_s=30, stale_s=300, script_only=True)
  submitted = dataclasses.replace(job, job_id="4242")
  assert submitted.summary().splitlines() == [
      f"submitted job array 4242: 2 worker(s) of 1 node(s) x 1 task(s); logs in "
      f"{os.path.abspath('logs')}",
      f"watch it: lawsearch sweep --config={SWEEP} --root /r --status"]


def test_the_cli_prints_the_script_of_the_flags_it_was_given(tmp_path, capsys):
  root = str(tmp_path / "root")
  assert cli.main(["sweep", f"--config={SWEEP}", "--root", root, "--override", "train.steps=2",
                   "--repair", "--slurm-script"]) == 0
  res = slurm.SlurmResources.from_config(configlib.load(SWEEP).get("slurm"))
  assert capsys.readouterr().out == slurm.sbatch_script(
      res, config=SWEEP, root=root, log_dir=os.path.abspath("slurm-logs"),
      sweep_args=["--override", "train.steps=2", "--heartbeat-s", "30", "--stale-s", "300",
                  "--repair"])


def test_a_bucket_for_the_logs_is_refused_before_anything_is_written():
  import pytest  # pylint: disable=import-outside-toplevel

  from lawsearch.errors import UserError  # pylint: disable=import-outside-toplevel

  with pytest.raises(UserError, match="--slurm-logs gs://b/logs: SLURM writes its logs to a shared"):
    slurm.sweep_job(configlib.load(SWEEP), config=SWEEP, root="/r", log_dir="gs://b/logs",
                    heartbeat_s=30, stale_s=300, script_only=True)
  assert not os.path.exists("gs:")  # abspath would have made it a local directory
