"""A sweep whose root fills up or turns read-only, as separate processes on a small tmpfs: the
worker stops with one line on stderr and exit status 2 (every later run would fail the same way),
records no run as failed for it, releases its claim where the disk lets it (a read-only one does
not: the claim goes stale), leaves no temporary file, and the same command continues the sweep
once the disk is fixed. Mounting a tmpfs needs root; elsewhere these tests are skipped."""

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest

from lawsearch import configlib
from lawsearch.rundir import RunDir
from lawsearch.train import claims, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOK = os.path.join(ROOT, "tests", "remount_at_step")
CONFIG = "configs/sweep.py:runlocal,data=synthetic"
RUNS = list(configlib.load(CONFIG).runs[:2])
OVERRIDES = ["train.steps=6", "train.eval_batches=1", "train.checkpoint_every=2",
             "train.log_every=1"]


def _why_not() -> str:
  if os.geteuid() != 0:
    return "mounting a tmpfs needs root"
  if sys.platform != "linux":
    return "tmpfs mounts are Linux's"
  return ""


pytestmark = pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "root")


@contextlib.contextmanager
def _tmpfs(path, size: str):
  """A tmpfs of `size` mounted at `path` (the test is skipped where the mount fails)."""
  os.makedirs(path, exist_ok=True)
  done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                        capture_output=True, text=True)
  if done.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", str(path)], check=False)


def _worker(root, *extra, env=None):
  cmd = [sys.executable, "-m", "lawsearch.cli", "sweep", f"--config={CONFIG}",
         f"--config.runs={RUNS!r}", "--root", str(root), "--no-progress", "--worker", "w",
         "--heartbeat-s", "0.5", "--stale-s", "4", *extra,
         *[a for o in OVERRIDES for a in ("--override", o)]]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})


def _planned(root):
  return sweep.plan(configlib.load(CONFIG, [f"--config.runs={RUNS!r}"]), str(root), OVERRIDES)


def _one_error_line(done) -> str:
  lines = [l for l in done.stderr.splitlines() if l.strip()]
  assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
  assert len(lines) == 1 and lines[0].startswith("lawsearch: error: "), done.stderr[-3000:]
  return lines[0]


def _leftovers(root) -> list[str]:
  return [os.path.join(d, n) for d, dirs, names in os.walk(root) for n in names + dirs
          if ".tmp" in n or ".new" in n]


def test_a_root_turned_read_only_mid_run_stops_in_one_line_and_the_run_resumes(tmp_path):
  with _tmpfs(tmp_path / "root", "256m") as root:
    first, second = _planned(root)
    done = _worker(root, env={"PYTHONPATH": HOOK, "LAWSEARCH_TEST_READ_ONLY_AT_STEP": "3",
                              "LAWSEARCH_TEST_MOUNT": str(root)})
    assert "Read-only file system" in _one_error_line(done)
    assert not os.path.exists(os.path.join(first.workdir, RunDir.FAILED))  # not the run's fault
    claim = claims.latest(first.workdir)
    assert claim.attempt == 1 and not claim.released and not claim.corrupt  # it goes stale
    assert not os.path.exists(second.workdir)  # the sweep stopped: no later run was started

    subprocess.run(["mount", "-o", "remount,rw", str(root)], check=True)
    time.sleep(max(0.0, claim.heartbeat + 4.5 - time.time()))  # the claim is stale now
    again = _worker(root)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resuming at step 2" in again.stdout  # from the checkpoint before the disk failed
    assert sweep.state(first.workdir).kind == "finished"
    assert claims.latest(first.workdir).attempt == 2 and not _leftovers(root)


def test_a_full_root_stops_in_one_line_releasing_the_claim(tmp_path):
  with _tmpfs(tmp_path / "root", "4m") as root:  # a checkpoint of these runs needs about 16 MiB
    first, _ = _planned(root)
    line = _one_error_line(_worker(root))
    assert "No space left on device" in line and "MiB" in line
    assert not os.path.exists(os.path.join(first.workdir, RunDir.FAILED))
    claim = claims.latest(first.workdir)
    assert claim is None or claim.released  # released, or removed where it could not be written
    assert not _leftovers(root)
    assert json.loads(open(os.path.join(first.workdir, RunDir.METRICS)).readline())["step"] == 1
