"""The train loop end to end (nano model, synthetic tokens, 8 fake CPU devices): the run directory,
exact resume after SIGKILL, refused checkpoints, NaN stops, and two processes x 4 devices (matching
one process, and resuming after both are killed)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

import crashing

from lawsearch import cli, configlib
from lawsearch.commands import args
from lawsearch.errors import UserError
from lawsearch.rundir import RunDir
from lawsearch.model.transformer import DTYPES, resolve_dtype
from lawsearch.train import evaluate, loop
from lawsearch.train.metrics import read

CONFIG = "configs/train.py:preset=nano,data=text"
ARGS = ["--config.train.steps=8", "--config.train.batch_size=8", "--config.train.seq_len=32",
        "--config.train.log_every=1", "--config.train.checkpoint_every=4",
        "--config.train.eval_every=4", "--config.train.eval_batches=1",
        "--config.model.max_seq_len=32"]
SYNTHETIC = "configs/train.py:preset=nano,data=synthetic"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


WORDS = ("the law of scaling meets model shape and every width asks how many heads a layer "
         "should carry when the budget is fixed").split()


@pytest.fixture(scope="module")
def data_args(tmp_path_factory):
  """A small English-like text file, byte-tokenised by lawsearch.data (grain pipeline)."""
  root = tmp_path_factory.mktemp("data")
  rng = np.random.default_rng(0)
  text = "\n".join(" ".join(rng.choice(WORDS, 12)) + "." for _ in range(1500))
  (root / "corpus.txt").write_text(text)
  return [f"--config.data.path={root / 'corpus.txt'}", "--config.data.tokenizer=bytes",
          "--config.data.vocab_size=257", f"--config.data.cache_dir={root / 'cache'}"]


def _losses(workdir):
  return {r["step"]: r["loss"] for r in read(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in r}


def _cli(workdir, *extra, env=None, **kwargs):
  cmd = [sys.executable, "-m", "lawsearch.cli", "train", f"--config={CONFIG}", *extra,
         "--no-progress"] + ([f"--workdir={workdir}"] if workdir else [])
  return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True,
                        text=True, timeout=240, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_args):
  """One uninterrupted in-process run on text: (workdir, result record)."""
  workdir = str(tmp_path_factory.mktemp("ref"))
  return workdir, loop.train(configlib.load(CONFIG, ARGS + data_args), workdir, progress=False)


def test_run_directory_is_the_unit_of_record(reference, data_args):
  workdir, result = reference
  assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json", "identity.json",
                                         "metrics.jsonl", "result.json"]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]
  on_disk = json.load(open(os.path.join(workdir, "result.json")))
  assert on_disk == result
  # The fitter's columns, from ArchSpec: nano has N = 2*(2*64*64 + 2*64*32 + 3*64*192).
  assert result["n_params"] == 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 192)
  assert (result["tokens"], result["d_model"], result["mlp_attn_ratio"]) == (8 * 8 * 32, 64, 3.0)
  records = read(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in records if "loss" in r] == list(range(1, 9))
  assert {"loss", "lr", "grad_norm", "tokens_per_s", "compile_s"} <= set(records[0])
  assert "heldout_loss" in records[3] and records[-1]["heldout_loss"] == result["loss"]
  # Text learns fast: below log(vocab) = 6.24 nats after 8 steps.
  assert result["loss"] < records[0]["loss"] < np.log(512) + 0.2
  assert json.load(open(os.path.join(workdir, "config.json")))["train"]["steps"] == 8
  # Idempotent: a finished run is returned, not retrained.
  assert loop.train(configlib.load(CONFIG, ARGS + data_args), workdir, progress=False) == result


def test_a_workdir_belongs_to_one_config(reference, data_args):
  workdir, result = reference
  # A finished run asked for more steps, or another model, is refused with the fields named.
  for extra, field in ((["--config.train.steps=16"], "train.steps: 8 -> 16"),
                       (["--config.optimizer.peak_lr=0.1"], "optimizer.peak_lr")):
    with pytest.raises(UserError, match=field):
      loop.train(configlib.load(CONFIG, ARGS + data_args + extra), workdir, progress=False)
  before = open(os.path.join(workdir, "config.json")).read()
  assert cli.main(["train", f"--config={CONFIG}", *ARGS, *data_args, "--config.train.steps=16",
                   f"--workdir={workdir}", "--no-progress"]) == 2
  assert open(os.path.join(workdir, "config.json")).read() == before  # nothing rewritten


def test_a_resume_may_change_only_the_safe_fields_and_keeps_their_history(reference, data_args,
                                                                          tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(reference[0], workdir)
  os.remove(os.path.join(workdir, "result.json"))
  shutil.rmtree(os.path.join(workdir, "checkpoints", "8"))  # interrupted after step 4's checkpoint
  with pytest.raises(UserError, match="optimizer.warmup_steps"):  # a trained field: refused
    loop.train(configlib.load(CONFIG, ARGS + data_args + ["--config.optimizer.warmup_steps=3"]),
               workdir, progress=False)
  safe = ["--config.train.log_every=2", "--config.train.eval_every=0"]
  result = loop.train(configlib.load(CONFIG, ARGS + data_args + safe), workdir, progress=False)
  assert result["loss"] == reference[1]["loss"]  # logging changes nothing trained
  assert result["config_history"] == [{"step": 4, "changes": {"train.eval_every": [4, 0],
                                                              "train.log_every": [1, 2]}}]
  assert json.load(open(os.path.join(workdir, "config.json")))["train"]["log_every"] == 2


def test_eval_of_the_run_directory_reproduces_its_final_heldout_loss(reference, tmp_path, capsys):
  workdir, result = reference
  record = evaluate.evaluate(workdir)  # restores the step-8 checkpoint into a fresh program
  assert record.step == 8 and record.heldout_loss == pytest.approx(result["loss"], rel=1e-6)
  more = evaluate.evaluate(workdir, ["--config.train.eval_batches=3"])
  assert more.tokens == 3 * result["batch_size"] * result["seq_len"]
  assert more.heldout_loss != pytest.approx(record.heldout_loss)
  assert record.heldout_loss_se == pytest.approx(result["loss_se"], rel=1e-6)
  assert cli.main(["eval", "--workdir", str(tmp_path)]) == 2
  assert "not a run directory" in capsys.readouterr().err


def test_eval_summary_is_a_line_for_people_then_the_record_as_json():
  result = evaluate.HeldoutResult("runs/a", 8, 3.123456, 0.0123456, 12288, {"wiki": 12288})
  line, record = result.summary().splitlines()
  assert line == "runs/a: step 8, held-out loss 3.12346 +- 0.01235 over 12,288 tokens"
  # The JSON line scripts read: these keys, in this order.
  assert record == ('{"workdir": "runs/a", "step": 8, "heldout_loss": 3.123456, '
                    '"heldout_loss_se": 0.0123456, "tokens": 12288, "sources": {"wiki": 12288}}')


def test_sigkill_and_restart_reproduce_the_uninterrupted_losses(reference, data_args, tmp_path):
  # Params, optimizer state and the grain iterator position all come back from the checkpoint.
  workdir = str(tmp_path / "run")
  killed = _cli(workdir, *ARGS, *data_args, env=crashing.at_step(6))
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert max(_losses(workdir)) == 6  # it got past the step-4 checkpoint
  resumed = _cli(workdir, *ARGS, *data_args)  # the same command
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resuming at step 4" in resumed.stdout
  assert _losses(workdir) == _losses(reference[0])  # bitwise, steps 1..8
  assert json.loads(resumed.stdout.strip().splitlines()[-1])["loss"] == reference[1]["loss"]


def test_checkpoint_of_another_architecture_is_refused(reference, data_args, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(os.path.join(reference[0], "checkpoints"), os.path.join(workdir, "checkpoints"))
  other = configlib.load(CONFIG, ARGS + data_args + ["--config.model.arch.ffn_dim=128"])
  with pytest.raises(ValueError, match="holds another architecture"):
    loop.train(other, workdir, progress=False)


def test_a_shapes_metadata_matches_with_or_without_fields_added_later():
  import dataclasses

  from lawsearch import arch
  from lawsearch.train.checkpoint import _same_shape

  spec = arch.preset("nano")
  spelled_out = dataclasses.asdict(spec)  # every field, the MLA ones at their defaults
  assert _same_shape(spec.fields(), spelled_out)
  assert not _same_shape(spec.fields(), dataclasses.asdict(spec.replace(d_model=96)))
  assert not _same_shape(spec.fields(), {"d_model": "wide"})


def test_corrupt_checkpoint_is_refused(reference, data_args, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(os.path.join(reference[0], "checkpoints"), os.path.join(workdir, "checkpoints"))
  for dirpath, _, files in os.walk(os.path.join(workdir, "checkpoints", "8", "state")):
    for name in files:
      with open(os.path.join(dirpath, name), "wb") as f:
        f.write(b"\x00garbage")
  with pytest.raises(ValueError, match="checkpoint 8 .* is corrupt or unreadable"):
    loop.train(configlib.load(CONFIG, ARGS + data_args), workdir, progress=False)


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  config = configlib.load(SYNTHETIC, ARGS + ["--config.optimizer.peak_lr=1e30",
                                          "--config.train.checkpoint_every=1",
                                          "--config.train.eval_every=0"])
  with pytest.raises(loop.NonFiniteLossError, match=r"at step (\d+).*last good checkpoint is step"):
    loop.train(config, workdir, progress=False)
  records = read(os.path.join(workdir, "metrics.jsonl"))
  bad = records[-1]["step"]
  assert not np.isfinite(records[-1]["loss"]) and all(np.isfinite(r["loss"]) for r in records[:-1])
  assert max(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))) == bad - 1


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_of_four_devices_match_one_process_of_eight_and_resume(tmp_path):
  # Synthetic batches are the same for any process count (grain shards windows per process).
  # Both processes checkpoint together (orbax multi-process), are SIGKILLed after step 3, and the
  # same two commands resume from the step-2 checkpoint: the losses are the one-process run's.
  args = ARGS + ["--config.train.checkpoint_every=0", "--config.train.eval_every=0",
                 "--config.train.steps=4"]
  reference = str(tmp_path / "one")
  loop.train(configlib.load(SYNTHETIC, args), reference, progress=False)
  workdir = str(tmp_path / "run")
  port = _free_port()
  env = {"XLA_FLAGS": os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=4")}

  def run_both(extra_env):
    procs = [subprocess.Popen(
        [sys.executable, "-m", "lawsearch.cli", "train", f"--config={SYNTHETIC}", *args,
         "--config.train.checkpoint_every=2", "--config.distributed.initialize=explicit",
         f"--config.distributed.coordinator_address=127.0.0.1:{port}",
         "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}",
         "--no-progress", f"--workdir={workdir}"],
        cwd=ROOT, env={**os.environ, **env, **extra_env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    return procs, [p.communicate(timeout=300) for p in procs]

  procs, outs = run_both(crashing.at_step(3))
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == -signal.SIGKILL, err[-3000:]
  procs, outs = run_both({})
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert "resuming at step 2" in outs[0][0]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]  # orbax, 2 hosts
  got, want = _losses(workdir), _losses(reference)
  assert sorted(got) == sorted(want)
  np.testing.assert_allclose([got[s] for s in sorted(got)], [want[s] for s in sorted(want)],
                             rtol=1e-6)


def test_auto_dtype_and_attention_follow_the_platform():
  config = configlib.load(SYNTHETIC, [])
  picked = {p: loop.model_config(config, p) for p in ("cpu", "gpu", "tpu")}
  assert [(m.dtype, m.attention_impl) for m in picked.values()] == [
      ("float32", "grouped"), ("bfloat16", "cudnn"), ("bfloat16", "xla")]
  config.model.dtype = "float32"  # cuDNN's fused attention takes 16-bit inputs only
  assert loop.model_config(config, "gpu").attention_impl == "xla"
  # Explicit dtypes pass through; `lawsearch bench --dtype` offers the same choices (its copy is
  # kept so that `lawsearch --help` imports no jax).
  assert [resolve_dtype(d, "cpu") for d in DTYPES] == list(DTYPES)
  assert args.DTYPES == ("auto", *DTYPES)


def test_a_failed_start_binds_nothing(tmp_path, capsys):
  # Refused before anything is written; a start that fails in its first step leaves an empty
  # directory; either way the corrected command then trains there.
  synthetic = "configs/train.py:preset=nano,data=synthetic"
  args = ["--config.train.steps=2", "--config.train.eval_batches=1"]
  workdir = str(tmp_path / "run")
  assert cli.main(["train", "--config", synthetic, *args, "--config.train.batch_size=0",
                   f"--workdir={workdir}", "--no-progress"]) == 2
  assert "train.batch_size=0" in capsys.readouterr().err and not os.path.exists(workdir)
  from lawsearch.train import step as step_lib  # pylint: disable=import-outside-toplevel

  def failing_step(*_, **__):
    def step(state, batch):
      raise MemoryError("out of memory in the first step")
    return step
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(step_lib, "make_train_step", failing_step)
    with pytest.raises(MemoryError, match="first step"):
      loop.train(configlib.load(synthetic, args), workdir, progress=False)
  assert not RunDir(workdir).config.exists() and not RunDir(workdir).identity.exists()
  assert cli.main(["train", "--config", synthetic, *args, f"--workdir={workdir}",
                   "--no-progress"]) == 0
  assert RunDir(workdir).result.exists()


def test_a_run_reading_its_corpus_more_than_once_says_so(data_args, tmp_path, capsys):
  # 60 steps of 64 x 32 tokens against a train split of about 100k tokens: 1.3 passes.
  args = ["--config.train.steps=60", "--config.train.batch_size=64", "--config.train.seq_len=32",
          "--config.model.max_seq_len=32", "--config.train.log_every=60",
          "--config.train.checkpoint_every=0", "--config.train.eval_every=0",
          "--config.train.eval_batches=1"]
  config = configlib.load(CONFIG, args + data_args)
  train_tokens = loop.make_loader(config, "train").tokens.n_tokens("train")
  per_pass = (train_tokens - 1) // 32 // 64  # whole batches of whole windows
  loop.train(config, str(tmp_path / "run"), progress=False)
  notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
  assert notes == [f"note: 60 steps read the train split {60 / per_pass:.1f} times ({per_pass}"
                   " batches a pass), and a scaling law assumes every training token is fresh: "
                   "give a larger corpus (--config.data.source=text --config.data.path=FILE)"]
  assert 1 < 60 / per_pass < 2
  # One pass or less, or synthetic tokens: no note.
  assert loop.corpus_passes_note(loop.make_loader(config, "train"), per_pass) is None
  synthetic = configlib.load(SYNTHETIC, args)
  assert loop.corpus_passes_note(loop.make_loader(synthetic, "train"), 10**6) is None
