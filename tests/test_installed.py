"""The installed package is complete: its wheel, outside the checkout, searches, exports, trains a
few steps of what it exported (the training config ships inside the package) and runs the demo on
the real runs it ships."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd, env):
  done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


def test_the_wheel_outside_the_checkout_searches_exports_and_trains(tmp_path):
  wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
  work.mkdir()
  _run(["-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), ROOT],
       ROOT, os.environ)
  [wheel] = list(wheels.glob("lawsearch-*.whl"))
  _run(["-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], ROOT,
       os.environ)
  # The wheel's lawsearch, not the checkout's: PYTHONPATH comes before the editable install.
  env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu"}
  where = _run(["-c", "import lawsearch; print(lawsearch.__file__)"], work, env)
  assert where.strip().startswith(str(site))
  _run(["-m", "lawsearch.cli", "search", "--params", "2e5", "--tokens", "4e6", "--layers", "4",
        "--head-dim", "16", "--target", "1.05", "--vocab-size", "512", "--hardware", "h200",
        "--batch", "8", "--input-len", "128", "--output-len", "16", "--out", "out"], work, env)
  assert (work / "out" / "surefire.config.py").exists()
  tiny = ["--config.train.steps=2", "--config.train.batch_size=8", "--config.train.seq_len=32",
          "--config.model.max_seq_len=32", "--config.train.eval_batches=1", "--no-progress"]
  out = _run(["-m", "lawsearch.cli", "train", "--config=out/surefire.config.py:data=synthetic",
              *tiny, "--workdir", "runs/surefire"], work, env)
  record = json.loads(out.strip().splitlines()[-1])
  exported = json.loads((work / "out" / "surefire.arch.json").read_text())
  assert record["d_model"] == exported["d_model"] and record["steps"] == 2
  # The demo on the real runs the package ships (the CPU replication's runs table).
  out = _run(["-m", "lawsearch.cli", "demo", "--out", "demo"], work, env)
  assert "runs lawsearch trained itself" in out and "SYNTHETIC" not in out
  # The package's own training config by name, from anywhere.
  loaded = _run(["-c", "from lawsearch import configlib; "
                 "print(configlib.load('train:preset=nano,data=synthetic').train.steps)"], work, env)
  assert int(loaded) > 0
