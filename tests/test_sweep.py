"""Training sweeps: configs/sweep.py expands to configs/train.py runs; `lawsearch sweep` trains
them in hashed run directories, skips finished ones and resumes interrupted ones."""

import os

import pytest

from lawsearch import cli, configlib, runs
from lawsearch.laws.synthetic import synthetic_sweep
from lawsearch.rundir import RunDir
from lawsearch.train import loop, sweep

SHAPE = ["d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn_dim"]


def test_paper_sweep_trains_the_architectures_the_laws_are_fitted_on():
  config = configlib.load("configs/sweep.py:scales=80M+145M+297M")
  expanded = sweep.expand(config)
  specs = [loop.arch_spec(c) for _, c in expanded]
  table = synthetic_sweep()  # the same recipe grid, as the demo's synthetic results table
  assert sorted(tuple(getattr(s, f) for f in SHAPE) for s in specs) == sorted(
      map(tuple, table[SHAPE].to_numpy().tolist()))
  _, first = expanded[0]
  n = loop.arch_spec(first).non_embedding_params
  assert first.train.tokens == round(100 * n) and first.train.seq_len == 2048  # paper recipe
  assert len({RunDir.locate("r", name, c).path for name, c in expanded}) == len(expanded) == 109


def test_sweep_trains_skips_finished_and_resumes_interrupted(tmp_path):
  config = configlib.load("configs/sweep.py:runlocal,data=synthetic",
                          ["--config.runs=" + repr(configlib.load(
                              "configs/sweep.py:runlocal,data=synthetic").runs[:2])])
  root, steps = str(tmp_path), ["train.steps=3", "train.eval_batches=1"]
  done = sweep.run(config, root, overrides=steps, progress=False)
  first = done.records
  assert len(first) == 2 and all(r.steps == 3 for r in first) and done.failed == ()
  assert [p.workdir for p in done.planned] == [r.run_dir for r in first]
  assert all(isinstance(r, runs.RunRecord) and r.to_dict() == runs.read_result(r.run_dir)
             for r in first)
  table = runs.collect(root)
  assert sorted(table["n_params"]) == sorted(r.n_params for r in first)
  # The summary is a row per finished run (its N, and its loss to 4 digits), then what is next.
  lines = done.summary().splitlines()
  assert lines[0].split() == list(sweep.SUMMARY_COLUMNS) and len(lines) == 4
  for line, r in zip(lines[1:], first):
    assert line.split()[0] == str(r.n_params) and f"{r.loss:.4g}" in line.split()
  assert lines[-1] == f"next: lawsearch fit --runs {root}"

  # Interrupted after its last checkpoint: no result.json; the same command finishes it.
  (name, run_config), = sweep.expand(config, steps)[1:]
  workdir = RunDir.locate(root, name, run_config).path
  os.remove(RunDir(workdir).result)
  assert sweep.state(workdir).kind == "started"
  again = sweep.run(config, root, overrides=steps, progress=False).records
  assert again[0] == first[0]  # finished: read back, not retrained
  assert again[1].loss == pytest.approx(first[1].loss, rel=1e-6)  # resumed at step 3
  assert [sweep.state(RunDir.locate(root, n, c).path).kind for n, c in sweep.expand(config, steps)] == [
      "finished", "finished"]


def test_bad_sweeps_are_clear_errors(tmp_path, capsys):
  empty = configlib.load("configs/sweep.py:scales=80M,x=0.5")  # d = 4,500 cannot hold 80M in 12
  with pytest.raises(ValueError, match="no buildable architecture"):
    sweep.expand(empty)
  with pytest.raises(ValueError, match="unknown scale '3B'"):
    configlib.load("configs/sweep.py:scales=3B")
  assert cli.main(["sweep", "--config=configs/sweep.py:runlocal", "--root", str(tmp_path),
                   "--override", "train.nonsense=1", "--dry-run"]) == 2
  assert "unknown config key 'train.nonsense'" in capsys.readouterr().err


def test_failure_summary_gives_each_failed_run_its_errors_first_line():
  result = sweep.SweepResult("r", (), (), (("N1M-a", "NonFiniteLossError: loss nan at step 3\n"
                                                     "  last good checkpoint: step 2"),
                                           ("N2M-b", "UserError: " + "x" * 300)))
  assert result.failure_summary().splitlines() == [
      "lawsearch sweep: 2 run(s) failed (--retry-failed retries them):",
      "  N1M-a: NonFiniteLossError: loss nan at step 3",
      "  N2M-b: UserError: " + "x" * 189]  # an error's first 200 characters


def test_equal_runs_are_listed_once():
  one = configlib.load("configs/sweep.py:runlocal,data=synthetic")
  twice = configlib.load("configs/sweep.py:runlocal,data=synthetic",
                         ["--config.runs=" + repr([one.runs[0], one.runs[1], one.runs[0]])])
  assert [name for name, _ in sweep.expand(twice)] == [name for name, _ in sweep.expand(one)][:2]
