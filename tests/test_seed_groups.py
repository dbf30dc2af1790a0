"""Seed groups (lawsearch/train/group.py): the seeds of one shape trained as one vmapped program,
each member an ordinary run directory. A group trains on one device, so the training runs in a
subprocess that sees one CPU device (this file run as a script: `python tests/test_seed_groups.py
CASE ROOT`); the tests read the run directories it leaves."""

import json
import os
import subprocess
import sys

import pytest

from lawsearch import compilation_cache, configlib, runs
from lawsearch.errors import UserError
from lawsearch.rundir import RunDir
from lawsearch.train import group, sweep

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = "configs/train.py:preset=nano,data=synthetic"
TRAIN_ARGS = ["--config.train.steps=4", "--config.train.batch_size=4",
              "--config.train.seq_len=16", "--config.model.max_seq_len=16",
              "--config.train.log_every=1", "--config.train.checkpoint_every=2",
              "--config.train.eval_batches=1"]
SWEEP = "configs/sweep.py:runlocal,data=synthetic,seeds=2"
SWEEP_OVERRIDES = ["train.steps=2", "train.eval_batches=1", "train.batch_size=4",
                   "train.checkpoint_every=2"]
KILL_AT = 3  # after the first checkpoint (step 2), before the second (step 4)


def _configs(seeds=(0, 1)):
  return [configlib.load(TRAIN, TRAIN_ARGS + [f"--config.seed={s}"]) for s in seeds]


def _sweep_config():
  runs_ = list(configlib.load(SWEEP).runs[:4])  # 2 shapes x seeds 0 and 1
  return configlib.load(SWEEP, [f"--config.runs={runs_!r}"])


def _workdirs(root, prefix):
  return [os.path.join(root, f"{prefix}-s{s}") for s in (0, 1)]


# -- the cases, run in a one-device subprocess ----------------------------------------------------
def _case_solo_and_group(root):
  from lawsearch.train import loop  # pylint: disable=import-outside-toplevel

  for config, workdir in zip(_configs(), _workdirs(root, "solo")):
    loop.train(config, workdir, progress=False)
  group.train_group(_configs(), _workdirs(root, "group"), progress=False)


def _case_killed(root):
  from lawsearch.train import loop  # pylint: disable=import-outside-toplevel

  def kill(step, _):
    if step == KILL_AT:
      raise KeyboardInterrupt(f"killed at step {step}")

  loop.STEP_CALLBACKS.append(kill)
  try:
    group.train_group(_configs(), _workdirs(root, "killed"), progress=False)
  except KeyboardInterrupt:
    pass
  loop.STEP_CALLBACKS.remove(kill)
  assert all(runs.read_result(w) is None for w in _workdirs(root, "killed"))
  group.train_group(_configs(), _workdirs(root, "killed"), progress=False)


def _case_sweep(root):
  config = _sweep_config()
  first = configlib.load(SWEEP, [f"--config.runs={[config.runs[1]]!r}"])
  sweep.run(first, root, overrides=SWEEP_OVERRIDES, progress=False)  # shape 1, seed 1 alone
  sweep.run(config, root, overrides=SWEEP_OVERRIDES, progress=False, seed_groups=True)


def _one_device(case, root) -> str:
  """Runs `case` in a subprocess that sees one CPU device; returns its output."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=1 "
                      "--xla_backend_optimization_level=0"}
  out = subprocess.run([sys.executable, __file__, case, str(root)], cwd=os.path.dirname(HERE),
                       env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  return out.stdout


@pytest.fixture(scope="module")
def solo_and_group(tmp_path_factory):
  root = tmp_path_factory.mktemp("groups")
  _one_device("solo_and_group", root)
  return root


def _results(root, prefix):
  return [runs.read_result(w) for w in _workdirs(root, prefix)]


# -- the tests ------------------------------------------------------------------------------------
def test_each_member_of_a_group_gets_the_result_its_seed_gets_alone(solo_and_group):
  solo, grouped = _results(solo_and_group, "solo"), _results(solo_and_group, "group")
  assert [r["seed"] for r in grouped] == [0, 1]
  for alone, member in zip(solo, grouped):
    assert member["steps"] == alone["steps"] == 4
    assert member["loss"] == pytest.approx(alone["loss"], abs=1e-5)
    assert member["train_loss"] == pytest.approx(alone["train_loss"], abs=1e-5)
  assert abs(grouped[0]["loss"] - grouped[1]["loss"]) > 1e-6  # the seeds differ


def test_each_member_is_an_ordinary_finished_run(solo_and_group):
  for workdir, config in zip(_workdirs(solo_and_group, "group"), _configs()):
    run_dir = RunDir(workdir)
    assert run_dir.identity.exists() and run_dir.config.exists()
    assert run_dir.config_changes(config) == {}  # bound to its own seed's config
    logged = [json.loads(line) for line in open(run_dir.metrics)]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3, 4]
    assert sweep.state(workdir).kind == "finished"


def test_a_killed_group_resumes_as_a_group_to_the_uninterrupted_results(solo_and_group,
                                                                        tmp_path):
  out = _one_device("killed", tmp_path)
  assert "resuming at step 2" in out and "one by one" not in out
  for whole, resumed in zip(_results(solo_and_group, "group"), _results(tmp_path, "killed")):
    assert resumed["steps"] == whole["steps"]
    assert resumed["loss"] == pytest.approx(whole["loss"], abs=1e-5)


def test_a_seed_group_sweep_trains_each_run_once_and_reports_them_finished(tmp_path):
  out = _one_device("sweep", tmp_path)
  planned = sweep.plan(_sweep_config(), str(tmp_path), SWEEP_OVERRIDES)
  # Shape 1's seed 1 finished beforehand: its seed 0 trains alone; shape 2's seeds as one group.
  joined = [line for line in out.splitlines() if "as one program:" in line]
  assert joined == [f"  with {planned[3].name} (seed 1) as one program: {planned[3].workdir}"]
  assert out.count(f"] {planned[1].name} ") == 1  # listed once, by the first pass, trained never
  status = sweep.status(_sweep_config(), str(tmp_path), SWEEP_OVERRIDES)
  assert [r["state"] for r in status.rows] == ["finished"] * 4
  assert all(runs.read_result(p.workdir)["steps"] == 2 for p in planned)


def test_configs_that_differ_beyond_the_seed_are_refused_by_name(tmp_path):
  configs = _configs()
  configs[1].train.batch_size = 8
  configs[1].optimizer.peak_lr = 1e-3
  with pytest.raises(UserError, match=r"differ only in seed; these differ: optimizer\.peak_lr, "
                                      r"train\.batch_size$"):
    group.train_group(configs, _workdirs(tmp_path, "g"), progress=False)


def test_a_group_on_several_devices_is_refused(tmp_path):
  # This test process sees 8 CPU devices (conftest.py).
  with pytest.raises(UserError, match="seed groups train on one device; this program sees 8"):
    group.train_group(_configs(), _workdirs(tmp_path, "g"), progress=False)
  assert not any(os.path.exists(w) for w in _workdirs(tmp_path, "g"))


if __name__ == "__main__":
  compilation_cache.enable()  # the session's (conftest.py): the cases share programs
  {"solo_and_group": _case_solo_and_group, "killed": _case_killed,
   "sweep": _case_sweep}[sys.argv[1]](sys.argv[2])
