"""Run directories, atomic result records and their collection into the fitter's table."""

import json
import subprocess
import sys

import pytest

from lawsearch import arch, runs
from lawsearch.rundir import RunDir


def test_result_record_and_atomic_write(tmp_path):
  spec = arch.preset("tiny")
  record = runs.result_record(spec, tokens=2e6, loss=3.5, steps=100)
  assert record["n_params"] == spec.non_embedding_params
  assert record["mlp_attn_ratio"] == spec.mlp_attn_ratio and record["d_model"] == spec.d_model
  d = tmp_path / "run"
  assert runs.read_result(d) is None
  runs.write_result(d, record)
  assert runs.read_result(d) == json.loads(json.dumps(record))
  assert [p.name for p in d.iterdir()] == ["result.json"]  # no temporary file left behind
  with pytest.raises(ValueError, match="not finite"):
    runs.result_record(spec, tokens=2e6, loss=float("nan"))
  with pytest.raises(ValueError, match="lacks"):
    runs.write_result(d, {"loss": 3.0})


def test_a_run_records_summary_is_its_result_json_on_one_line(tmp_path):
  spec = arch.preset("tiny")
  runs.write_result(tmp_path, runs.result_record(spec, tokens=2e6, loss=3.5, steps=100))
  line = runs.RunRecord.read(tmp_path).summary()
  assert "\n" not in line and json.loads(line) == runs.read_result(tmp_path)
  assert json.loads(line)["loss"] == 3.5 and json.loads(line)["steps"] == 100


def test_collect_many_roots(tmp_path):
  specs = [arch.preset("tiny"), arch.preset("tiny-wide")]
  for i, (root, spec) in enumerate(zip(["a", "b"], specs)):
    rd = RunDir.locate(tmp_path / root / "sweep", "r", {"i": i}).path
    runs.write_result(rd, runs.result_record(spec, tokens=1e6 * (i + 1), loss=4.0 - i))
  (tmp_path / "a" / "unfinished").mkdir()
  (tmp_path / "a" / "unfinished" / RunDir.CONFIG).write_text("{}")  # started, no result yet
  df = runs.collect(tmp_path / "a", str(tmp_path / "b"))
  assert len(df) == 2
  assert runs.unfinished(tmp_path) == [str(tmp_path / "a" / "unfinished")]
  assert runs.unfinished(tmp_path / "b") == [] and runs.unfinished(tmp_path / "none") == []
  assert set(runs.REQUIRED) <= set(df.columns) and "run_dir" in df.columns
  assert sorted(df["n_params"]) == sorted(s.non_embedding_params for s in specs)
  assert sorted(df["loss"]) == [3.0, 4.0]


def test_collect_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    runs.collect(tmp_path / "missing")
  with pytest.raises(ValueError, match="no result.json"):
    runs.collect(tmp_path)
  (tmp_path / "x").mkdir()
  (tmp_path / "x" / "result.json").write_text("{broken")
  with pytest.raises(ValueError, match=r"result.json: damaged result record: not JSON"):
    runs.collect(tmp_path)


def test_runs_imports_no_heavy_frameworks():
  code = ("import sys, lawsearch.runs; "
          "print([m for m in ('jax', 'flax', 'orbax', 'grain', 'tensorflow') if m in sys.modules])")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_remote_root_without_its_client_is_a_clear_error():
  # A process where gcsfs cannot be imported (the test extra installs it; None in sys.modules
  # makes its import fail), so no gs:// request ever leaves the machine.
  pytest.importorskip("etils.epath", reason="etils not installed")
  code = ("import sys; sys.modules['gcsfs'] = None\n"
          "from lawsearch import runs\n"
          "try:\n  runs.collect('gs://bucket/sweep')\n"
          "except ValueError as e:\n  print(type(e).__name__, e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.startswith("UserError cannot reach gs://bucket/sweep")
  assert "pip install gcsfs" in out.stdout


def test_run_record_is_the_result_typed(tmp_path):
  from lawsearch import arch

  spec = arch.preset("nano")
  record = runs.result_record(spec, tokens=1e6, loss=3.25, loss_se=0.01, steps=10, seed=2)
  runs.write_result(tmp_path, record)
  typed = runs.RunRecord.read(tmp_path)
  assert typed.spec == spec and typed.n_params == spec.non_embedding_params
  assert (typed.loss, typed.loss_se, typed.steps, typed.seed, typed.tokens) == (
      3.25, 0.01, 10, 2, 1e6)
  assert typed.to_dict() == record and typed.config_history == ()
  assert runs.RunRecord.read(tmp_path / "none") is None
