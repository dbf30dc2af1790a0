"""A one-machine SLURM cluster for the tests: munged, slurmctld and slurmd on 127.0.0.1 with their
own config, sockets, state and ports under a temporary directory (the machine's /etc/slurm is not
touched). Needs Debian's slurm-wlm and munge (.ci/run installs them) and root.

    cluster = SlurmCluster.start(tmp_dir)   # or a reason it cannot: SlurmCluster.unavailable()
    subprocess.run(["sbatch", ...], env={**os.environ, **cluster.env})
    cluster.stop()
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time


def _program(name: str) -> str | None:
  """Where SLURM's or munge's program `name` is: on PATH, or in /usr/sbin (the daemons' home,
  which a user's PATH may lack); None where neither holds it."""
  return shutil.which(name) or shutil.which(name, path="/usr/sbin")


DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "sinfo")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@dataclasses.dataclass
class SlurmCluster:
  root: str
  env: dict

  @staticmethod
  def unavailable() -> str:
    """Why no cluster can start here ("" when one can)."""
    missing = [d for d in DAEMONS if _program(d) is None]
    if missing:
      return (f"SLURM is not installed ({', '.join(missing)} missing): apt-get install "
              "slurm-wlm munge (.ci/run does)")
    if os.geteuid() != 0:
      return "starting slurmd and munged needs root"
    if not os.path.exists("/etc/munge/munge.key"):
      return "no /etc/munge/munge.key (the munge package creates it)"
    return ""

  @classmethod
  def start(cls, root: str, cpus: int = 4) -> "SlurmCluster":
    host = socket.gethostname().split(".")[0]
    for d in ("state", "spool", "log"):
      os.makedirs(os.path.join(root, d), exist_ok=True)
    sock = os.path.join(root, "munge.sock")
    conf = os.path.join(root, "slurm.conf")
    settings = {
        "ClusterName": "lawsearchtest", "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmctldPort": _free_port(), "SlurmdPort": _free_port(),
        "AuthType": "auth/munge", "CredType": "cred/munge", "AuthInfo": f"socket={sock}",
        "SlurmUser": "root", "SlurmdUser": "root",
        "StateSaveLocation": f"{root}/state", "SlurmdSpoolDir": f"{root}/spool",
        "SlurmctldPidFile": f"{root}/slurmctld.pid", "SlurmdPidFile": f"{root}/slurmd.pid",
        "SlurmctldLogFile": f"{root}/log/slurmctld.log", "SlurmdLogFile": f"{root}/log/slurmd.log",
        "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres", "SelectTypeParameters": "CR_CPU",
        # more CPUs than the machine has, so several single-CPU workers run at once
        "SlurmdParameters": "config_overrides", "ReturnToService": 2, "MpiDefault": "none",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none", "KillWait": 2,
        "MinJobAge": 300,
    }
    lines = [f"{k}={v}" for k, v in settings.items()] + [
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8000 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP"]
    with open(conf, "w") as f:
      f.write("\n".join(lines) + "\n")
    env = {"SLURM_CONF": conf}
    run_env = {**os.environ, **env}
    subprocess.run([_program("munged"), "--force", f"--socket={sock}", f"--pid-file={root}/munged.pid",
                    f"--log-file={root}/log/munged.log", f"--seed-file={root}/munge.seed",
                    "--key-file=/etc/munge/munge.key"], check=True, env=run_env)
    subprocess.run([_program("slurmctld"), "-i"], check=True, env=run_env)
    subprocess.run([_program("slurmd")], check=True, env=run_env)
    cluster = cls(root, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
      state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                             env=run_env).stdout.strip()
      if state == "idle":
        return cluster
      time.sleep(0.5)
    cluster.stop()
    raise RuntimeError(f"the test SLURM node did not come up (sinfo: {state!r}); see {root}/log")

  def run(self, *cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), env={**os.environ, **self.env}, capture_output=True,
                          text=True, **kwargs)

  def wait(self, job: str, timeout: float = 600) -> None:
    """Until job `job` (all its array tasks) has left the queue."""
    deadline = time.monotonic() + timeout
    while self.run("squeue", "-h", "-j", job).stdout.strip():
      if time.monotonic() > deadline:
        self.run("scancel", job)
        raise TimeoutError(f"job {job} still queued or running after {timeout:.0f} s")
      time.sleep(0.5)

  def stop(self) -> None:
    self.run("scancel", "--full", "-u", "root")
    for name in ("slurmd", "slurmctld", "munged"):
      try:
        with open(os.path.join(self.root, f"{name}.pid")) as f:
          os.kill(int(f.read().strip()), signal.SIGTERM)
      except (OSError, ValueError):
        pass
