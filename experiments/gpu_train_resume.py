"""`lawsearch train` on one GPU: throughput with the default config, and kill-and-resume.

    python experiments/gpu_train_resume.py --tokens .gpudata/tokens --out $OUT   # on the GPU
    python experiments/gpu_train_resume.py --smoke --steps 12 --every 4 --kill-at 8 --log-every 1
                                           --out /tmp/x                       # CPU check

Three runs of the CLI (subprocesses, the same command line each time) on a token directory that
`lawsearch data prepare` wrote (s80m's shape with the corpus's vocabulary, batch 16 x 2048,
`auto` dtype and attention, i.e. bfloat16 and cuDNN on a GPU):
  1. reference: uninterrupted, `--steps` steps, a checkpoint every `--every` steps;
  2. killed: the same in a second workdir, SIGKILLed right after the checkpoint at `--kill-at`
     (tests/crash_at_step/, a STEP_CALLBACKS hook, waits for the save, then kills it);
  3. resumed: the same command again in that workdir; it must start at `--kill-at`.
Reported: tokens/s and MFU of the reference (median over its logged windows, the first
excluded), compile time, and the largest |loss difference| to the reference before the kill
(run-to-run noise of the GPU: XLA's scatter-add is non-deterministic) and after the resume.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(workdir: str, args: list[str], kill_at: int | None, log: str) -> tuple[int, float]:
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  if kill_at is not None:
    hook = os.path.join(os.path.dirname(__file__), "..", "tests", "crash_at_step")
    env.update(PYTHONPATH=os.path.abspath(hook), LAWSEARCH_TEST_KILL_AT_STEP=str(kill_at))
  cmd = [sys.executable, "-m", "lawsearch.cli", "train", *args, "--no-progress",
         f"--workdir={workdir}"]
  t0 = time.perf_counter()
  with open(log, "a") as f:
    f.write("$ " + " ".join(cmd) + "\n")
    f.flush()
    code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
  return code, time.perf_counter() - t0


def losses(workdir: str) -> dict[int, dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r for r in map(json.loads, f) if "loss" in r}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--tokens", default=".gpudata/tokens", help="`lawsearch data prepare` output")
  p.add_argument("--vocab", type=int, default=4096)
  p.add_argument("--steps", type=int, default=600)
  p.add_argument("--every", type=int, default=200)
  p.add_argument("--kill-at", type=int, default=400)
  p.add_argument("--log-every", type=int, default=10)
  p.add_argument("--out", default=".")
  p.add_argument("--smoke", action="store_true", help="nano model, synthetic tokens, CPU")
  a = p.parse_args()
  os.makedirs(a.out, exist_ok=True)
  if a.smoke:
    args = ["--config=configs/train.py:preset=nano,data=synthetic", "--config.train.batch_size=8",
            "--config.train.seq_len=32", "--config.model.max_seq_len=32"]
  else:
    args = ["--config=configs/train.py:preset=s80m,data=tokens",
            f"--config.data.path={a.tokens}", f"--config.model.arch.vocab_size={a.vocab}",
            f"--config.data.vocab_size={a.vocab}", "--config.train.batch_size=16",
            "--config.train.seq_len=2048"]
  args += [f"--config.train.steps={a.steps}", f"--config.train.checkpoint_every={a.every}",
           f"--config.train.eval_every={a.every}", f"--config.train.log_every={a.log_every}"]
  log = os.path.join(a.out, "gpu_train_resume.log")
  tmp = tempfile.mkdtemp()
  ref_dir, cut_dir = os.path.join(tmp, "reference"), os.path.join(tmp, "killed")

  code, ref_s = run_cli(ref_dir, args, None, log)
  assert code == 0, f"reference run failed ({code}); see {log}"
  code, _ = run_cli(cut_dir, args, a.kill_at, log)
  assert code == -signal.SIGKILL, f"the killed run ended with {code}, not SIGKILL; see {log}"
  before_resume = losses(cut_dir)
  code, resume_s = run_cli(cut_dir, args, None, log)
  assert code == 0, f"resumed run failed ({code}); see {log}"

  ref, cut = losses(ref_dir), losses(cut_dir)
  assert max(before_resume) >= a.kill_at, "the killed run logged nothing up to its kill step"
  with open(log) as f:
    resumed_at = f"resuming at step {a.kill_at}" in f.read()
  windows = [r for s, r in sorted(ref.items()) if s > a.log_every and "tokens_per_s" in r
             and s % a.every]  # steps right after a save or an eval are not representative
  result = {
      "device": __import__("jax").devices()[0].device_kind,
      "args": args,
      "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in windows),
      "mfu_median": statistics.median(r["mfu"] for r in windows if "mfu" in r)
                    if any("mfu" in r for r in windows) else None,
      "compile_s": ref[min(ref)].get("compile_s"),
      "reference_wall_s": ref_s, "resume_wall_s": resume_s,
      "resumed_at_kill_step": resumed_at,
      "max_abs_loss_diff_before_kill": max(abs(cut[s]["loss"] - ref[s]["loss"])
                                           for s in cut if s <= a.kill_at),
      "max_abs_loss_diff_after_resume": max(abs(cut[s]["loss"] - ref[s]["loss"])
                                            for s in cut if s > a.kill_at),
      "loss_first_last": [ref[min(ref)]["loss"], ref[max(ref)]["loss"]],
      "heldout": {s: r["heldout_loss"] for s, r in sorted(ref.items()) if "heldout_loss" in r},
  }
  print(json.dumps(result, indent=1))
  with open(os.path.join(a.out, "gpu_train_resume.json"), "w") as f:
    json.dump(result, f, indent=1)
  shutil.copy(os.path.join(ref_dir, "metrics.jsonl"), os.path.join(a.out, "reference.jsonl"))
  shutil.copy(os.path.join(cut_dir, "metrics.jsonl"), os.path.join(a.out, "resumed.jsonl"))
  shutil.rmtree(tmp)


if __name__ == "__main__":
  main()
