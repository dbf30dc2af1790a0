"""Run directories in Cloud Storage, for real: a local GCS emulator (tests/gcs_emulator.py:
gcp-storage-emulator from PyPI, with the generation preconditions tensorstore needs) on 127.0.0.1,
reached by gcsfs (lawsearch.paths, through etils.epath) and by tensorstore
(orbax's checkpoints). A tiny run with --workdir gs://... writes every file into the bucket, is
killed, resumes from the bucket's checkpoint with the uninterrupted run's losses, and `lawsearch
fit --runs gs://...` and `lawsearch report` read and write there."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import crashing

from lawsearch import cli, laws, paths, runs
from lawsearch.rundir import RunDir, write_json_atomic

pytest.importorskip("gcsfs", reason="gcsfs (the gs:// client etils.epath uses) is not installed")
pytest.importorskip("gcp_storage_emulator", reason="the GCS emulator gcp-storage-emulator is not "
                    "installed (pip install gcp-storage-emulator)")

from test_train_loop import ARGS, CONFIG, ROOT, _losses, data_args, reference  # noqa: E402,F401

BUCKET = "lawsearch-test"
COMMITTED = os.path.join(ROOT, "experiments", "results", "cpu_replication", "fit")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def gcs():
  """The emulator's environment (also set in this process while the module runs)."""
  port = _free_port()
  server = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "tests", "gcs_emulator.py"), str(port), BUCKET],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  url = f"http://127.0.0.1:{port}"
  env = {"STORAGE_EMULATOR_HOST": url,  # gcsfs
         "TENSORSTORE_GCS_HTTP_URL": url, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # orbax
         "GOOGLE_CLOUD_PROJECT": "lawsearch-test"}
  deadline = time.monotonic() + 30
  while True:
    try:
      socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
      break
    except OSError:
      if time.monotonic() > deadline or server.poll() is not None:
        server.kill()
        pytest.skip("the GCS emulator did not start on 127.0.0.1")
      time.sleep(0.2)
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    yield env
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
    server.kill()
    server.wait()


def _train(workdir, data_args, env):
  cmd = [sys.executable, "-m", "lawsearch.cli", "train", f"--config={CONFIG}", *ARGS, *data_args,
         "--no-progress", f"--workdir={workdir}"]
  return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                        timeout=300)


def _files(url) -> set[str]:
  """The files under `url`, relative to it (etils' walk yields directories without the gs://)."""
  root = url.split("://")[-1]
  return {f"{top}/{f}"[len(root) + 1:] for top, _, files in paths.path(url).walk() for f in files}


def test_a_run_in_a_bucket_is_killed_resumes_there_and_matches_the_local_run(
    gcs, reference, data_args, tmp_path):
  workdir = f"gs://{BUCKET}/runs/nano"
  killed = _train(workdir, data_args, {**gcs, **crashing.at_step(6)})
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  files = _files(workdir)
  assert {"config.json", "metrics.jsonl"} <= files and "result.json" not in files
  assert any(f.startswith("checkpoints/4/") for f in files), files
  assert not os.path.exists(os.path.join(ROOT, "gs:")), "a gs:// path became a local directory"

  resumed = _train(workdir, data_args, gcs)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resuming at step 4" in resumed.stdout
  assert _losses(workdir) == _losses(reference[0])  # bitwise, steps 1..8, read from the bucket
  record = runs.RunRecord.read(workdir)
  assert record.loss == reference[1]["loss"]
  assert any(f.startswith("checkpoints/8/") for f in _files(workdir))
  assert not os.path.exists(os.path.join(ROOT, "gs:"))


def test_fit_and_report_read_and_write_a_bucket(gcs, tmp_path, capsys):
  if not os.path.isdir(COMMITTED):
    pytest.skip(f"{COMMITTED} (the committed CPU replication runs) is absent")
  root = f"gs://{BUCKET}/sweep"
  for record in sorted(paths.path(COMMITTED).rglob(RunDir.RESULT))[:12]:
    write_json_atomic(f"{root}/{record.parent.name}/{RunDir.RESULT}",
                           json.loads(record.read_text()))
  local = tmp_path / "local"
  for record in sorted(paths.path(COMMITTED).rglob(RunDir.RESULT))[:12]:
    (local / record.parent.name).mkdir(parents=True)
    shutil.copy(record, local / record.parent.name / RunDir.RESULT)

  remote_fit = laws.fit_runs(root, l_opt="empirical", validate=False)
  local_fit = laws.fit_runs(str(local), l_opt="empirical", validate=False)
  assert remote_fit.law.coefficients == local_fit.law.coefficients
  assert len(runs.collect(root)) == 12

  law = f"gs://{BUCKET}/out/law.json"
  assert cli.main(["fit", "--runs", root, "--out", law, "--bootstrap", "0", "--no-validate"]) == 0
  assert laws.ConditionalLaw.from_json(law).coefficients == remote_fit.law.coefficients
  report = f"gs://{BUCKET}/out/report"
  assert cli.main(["report", "--runs", root, "--law", law, "--out", report]) == 0
  assert {"report.md", "u_curves.png", "contours.png", "predicted_vs_measured.png"} <= _files(report)
  assert paths.path(report).joinpath("u_curves.png").read_bytes()[:4] == b"\x89PNG"
  capsys.readouterr()
  assert not os.path.exists("gs:")


def test_claims_in_a_bucket_go_to_exactly_one_worker(gcs):
  from concurrent.futures import ThreadPoolExecutor

  from lawsearch.train import claims

  workdir = f"gs://{BUCKET}/claims/run"
  with ThreadPoolExecutor(8) as pool:  # eight workers race for the first claim
    won = list(pool.map(lambda i: claims.acquire(workdir, f"w{i}"), range(8)))
  winners = [c for c in won if c is not None]
  assert len(winners) == 1 and claims.latest(workdir).worker == winners[0].worker
  assert claims.acquire(workdir, "late") is None  # live: nobody else
  assert paths.create(f"{workdir}/claims/0001.json", "{}") is False
  claims.release(workdir, winners[0])
  assert claims.acquire(workdir, "next").attempt == 2  # released: the next attempt
