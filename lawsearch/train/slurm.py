"""A sweep as a SLURM job array: each array task is one `lawsearch sweep` worker on the shared
root, and the workers split the runs through claims (lawsearch.train.claims), so tasks may start,
die, be cancelled or be resubmitted in any order.

    script = sbatch_script(SlurmResources(...), config="configs/sweep.py:recipe=cpu", root=...)
    job_id = submit(script, log_dir)   # sbatch --parsable
    job = sweep_job(sweep, config=..., root=..., ...)   # both, as `lawsearch sweep --slurm`

A worker of more than one task (nodes x tasks_per_node > 1) runs under `srun`, whose multi-task
step lets `jax.distributed.initialize()` read SLURM's environment (see loop.initialize_distributed:
no config change, so the run directories are those of a one-process worker). Resources come from
the sweep config's `slurm` block (configs/sweep.py); flags override them.

Imports no JAX.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
from typing import Sequence

from lawsearch import paths
from lawsearch.errors import UserError


_TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}|UNLIMITED|INFINITE", re.I)
_NAME = re.compile(r"[A-Za-z0-9._+-]+")
_NAMES = re.compile(r"[A-Za-z0-9._+-]+(,[A-Za-z0-9._+-]+)*")


def _directive_path(path: str, flag: str) -> str:
  """`path` as one argument of an #SBATCH line: double-quoted, with \\ and \" escaped (sbatch
  reads quotes and backslashes there as a shell does); a newline, which would end the line and
  start another directive, is refused."""
  if any(c in path for c in "\n\r\0"):
    raise UserError(f"{flag} {path!r}: a path with a line break cannot go into an sbatch script")
  return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclasses.dataclass(frozen=True)
class SlurmResources:
  """What one array task (one sweep worker) asks SLURM for, and how many tasks there are."""

  workers: int = 2  # array tasks, each a sweep worker
  nodes: int = 1  # per worker (a multi-host run)
  tasks_per_node: int = 1  # processes per node (e.g. one per GPU)
  gpus_per_node: int = 0
  cpus_per_task: int = 1
  time: str = "24:00:00"  # per worker; a worker that runs out is taken over after --stale-s
  partition: str = ""
  account: str = ""
  max_concurrent: int = 0  # the array's %N throttle (0: none)

  def __post_init__(self):
    for name, low in (("workers", 1), ("nodes", 1), ("tasks_per_node", 1), ("cpus_per_task", 1),
                      ("gpus_per_node", 0), ("max_concurrent", 0)):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"slurm.{name}={value!r} must be an integer >= {low}")
    # Each value becomes one `#SBATCH` line: a newline or a quote would write another directive.
    for name, pattern, words in (
        ("time", _TIME, "a SLURM time limit (MINUTES, HH:MM:SS, D-HH[:MM[:SS]] or UNLIMITED)"),
        ("partition", _NAMES, "partition names: letters, digits and . _ - + , only"),
        ("account", _NAME, "an account name: letters, digits and . _ - + only")):
      value = getattr(self, name)
      if not isinstance(value, str) or (value or name == "time") and not pattern.fullmatch(value):
        raise UserError(f"slurm.{name}={value!r} must be {words}")

  @classmethod
  def from_config(cls, block, **overrides) -> "SlurmResources":
    """From the sweep config's `slurm` ConfigDict (absent: the defaults), then `overrides`
    (the CLI's flags; None values are ignored)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    given = dict(block.to_dict() if hasattr(block, "to_dict") else block or {})
    unknown = sorted(set(given) - fields)
    if unknown:
      raise UserError(f"unknown slurm setting(s) {unknown}; known: {sorted(fields)}")
    given.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**given)


def sbatch_script(res: SlurmResources, *, config: str, root: str, log_dir: str,
                  sweep_args: Sequence[str] = (), python: str = sys.executable,
                  workdir: str | None = None) -> str:
  """The sbatch script of a sweep's job array. `config`: the sweep config as `lawsearch sweep
  --config` takes it; `sweep_args`: further `lawsearch sweep` arguments (--override ...,
  --config.* overrides, --heartbeat-s, ...); `workdir`: where the tasks start (default here)."""
  array = f"0-{res.workers - 1}" + (f"%{res.max_concurrent}" if res.max_concurrent else "")
  lines = ["#!/bin/bash", "#SBATCH --job-name=lawsearch-sweep", f"#SBATCH --array={array}",
           f"#SBATCH --nodes={res.nodes}", f"#SBATCH --ntasks-per-node={res.tasks_per_node}",
           f"#SBATCH --cpus-per-task={res.cpus_per_task}", f"#SBATCH --time={res.time}",
           "#SBATCH --output=" + _directive_path(f"{log_dir}/%A_%a.out", "--slurm-logs"),
           "#SBATCH --open-mode=append"]
  if res.gpus_per_node:
    lines.append(f"#SBATCH --gpus-per-node={res.gpus_per_node}")
  if res.partition:
    lines.append(f"#SBATCH --partition={res.partition}")
  if res.account:
    lines.append(f"#SBATCH --account={res.account}")
  command = [python, "-m", "lawsearch.cli", "sweep", f"--config={config}", "--root", root,
             "--no-progress", *sweep_args]
  lines += ["set -euo pipefail", f"cd {shlex.quote(workdir or os.getcwd())}",
            'export LAWSEARCH_WORKER="slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
            "# srun: one process per task; a multi-task step joins one JAX program",
            "srun --kill-on-bad-exit=1 " + shlex.join(command)]
  return "\n".join(lines) + "\n"


def submit(script: str, log_dir: str) -> str:
  """Submits `script` with sbatch (the script is kept as log_dir/sweep.sbatch, a local
  directory: `sweep_job` refuses a bucket); the job id."""
  os.makedirs(log_dir, exist_ok=True)
  path = os.path.join(log_dir, "sweep.sbatch")
  paths.write_text(path, script)
  try:
    done = subprocess.run(["sbatch", "--parsable", path], capture_output=True, text=True,
                          timeout=120)
  except FileNotFoundError:
    raise UserError("sbatch is not on PATH: run this on a SLURM login node, or use "
                    "--slurm-script to print the script") from None
  if done.returncode:
    raise UserError(f"sbatch refused {path}: {done.stderr.strip() or done.stdout.strip()}")
  return done.stdout.strip().split(";")[0]


@dataclasses.dataclass(frozen=True)
class SweepJob:
  """A sweep as a job array: its resources, its sbatch script (whose tasks log to `log_dir`) and
  the array's job id (None when the script was only written out, not submitted)."""

  resources: SlurmResources
  config: str  # the sweep config, as `lawsearch sweep --config` takes it
  root: str
  log_dir: str
  script: str
  job_id: str | None

  def summary(self) -> str:
    """What `lawsearch sweep --slurm` prints: the job array, where its logs go and how to watch
    it; with --slurm-script, the script."""
    if self.job_id is None:
      return self.script.removesuffix("\n")
    res = self.resources
    return (f"submitted job array {self.job_id}: {res.workers} worker(s) of {res.nodes} node(s) "
            f"x {res.tasks_per_node} task(s); logs in {self.log_dir}\n"
            f"watch it: lawsearch sweep --config={self.config} --root {self.root} --status")


def sweep_job(sweep, *, config: str, root: str, log_dir: str, heartbeat_s: float, stale_s: float,
              workers: int | None = None, overrides: Sequence[str] = (),
              config_overrides: Sequence[str] = (), retry_failed: bool = False,
              repair: bool = False, seed_groups: bool = False,
              script_only: bool = False) -> SweepJob:
  """The sweep `config` on `root` as a job array of `lawsearch sweep` workers, submitted with
  sbatch unless `script_only`. Resources come from `sweep` (the loaded sweep config)'s `slurm`
  block, `workers` (array tasks) overriding its count. Each worker gets `overrides` (KEY=VALUE,
  every run's config), `config_overrides` (--config.* of the sweep config; the --config.slurm.*
  ones are the submission's only), its heartbeat and stale limits in seconds, `retry_failed`,
  `repair` and `seed_groups`. The script names `log_dir` as an absolute path."""
  res = SlurmResources.from_config(sweep.get("slurm"), workers=workers)
  sweep_args = ([a for o in overrides for a in ("--override", o)]
                + [a for a in config_overrides if not a.startswith("--config.slurm.")]
                + ["--heartbeat-s", f"{heartbeat_s:g}", "--stale-s", f"{stale_s:g}"]
                + (["--retry-failed"] if retry_failed else []) + (["--repair"] if repair else [])
                + (["--seed-groups"] if seed_groups else []))
  if paths.is_remote(log_dir):  # before abspath, which would make a URL a local directory
    raise UserError(f"--slurm-logs {log_dir}: SLURM writes its logs to a shared filesystem, not "
                    "a bucket; give a directory every node mounts")
  log_dir = os.path.abspath(log_dir)
  script = sbatch_script(res, config=config, root=root, log_dir=log_dir, sweep_args=sweep_args)
  return SweepJob(res, config, root, log_dir, script,
                  None if script_only else submit(script, log_dir))
