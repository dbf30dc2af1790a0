"""A sweep's cost on paper (lawsearch.train.estimate), `lawsearch sweep --dry-run`'s scale table,
and its ahead-of-time check of every run against a Cloud TPU slice."""

import importlib.util
import json
import os

import pytest

from lawsearch import arch, cli, configlib
from lawsearch.cost import HARDWARE
from lawsearch.train import estimate, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "experiments", "results")
SWEEP = "configs/sweep.py:runlocal,data=synthetic"


def test_the_mfu_is_the_committed_measurement():
  path = os.path.join(RESULTS, "gpu_train_resume_h100.json")
  if not os.path.exists(path):
    pytest.skip(f"{path} is absent")
  assert estimate.MEASURED_MFU == round(json.load(open(path))["mfu_median"], 3)


def test_one_run_by_hand():
  spec = arch.preset("llama3.2-1b")
  n, d, v, layers = spec.non_embedding_params, spec.d_model, spec.vocab_size, spec.n_layers
  tokens, seq = 100 * n, 2048
  per_token = 6 * (n + d * v) + 12 * layers * seq * spec.n_heads * spec.head_dim
  est = estimate.estimate([(spec, tokens, seq)], clusters=[("h100-sxm", 64), ("tpu-v5p", 8)],
                          mfu=0.5)
  assert est.flops == pytest.approx(tokens * per_token, rel=1e-12)
  h100, v5p = est.rows
  assert h100.chip_hours == pytest.approx(tokens * per_token / (989e12 * 0.5) / 3600)
  assert h100.wall_s == pytest.approx(h100.chip_hours * 3600 / 64)
  assert v5p.wall_s == pytest.approx(tokens * per_token / (HARDWARE["tpu-v5p"].peak_flops * 0.5)
                                     / 8)
  with pytest.raises(ValueError, match="mfu"):
    estimate.estimate([(spec, tokens, seq)], mfu=1.5)


def test_the_committed_paper_sweep_cost_is_what_the_code_computes():
  path = os.path.join(RESULTS, "paper_sweep_cost.json")
  if not os.path.exists(path):
    pytest.skip(f"{path} is absent; run experiments/paper_sweep_cost.py")
  doc = json.load(open(path))
  grid = estimate.for_configs(c for _, c in sweep.expand(
      configlib.load("configs/sweep.py:scales=80M+145M+297M")))
  assert doc["grid"]["runs"] == grid.runs == 109
  assert doc["grid"]["flops"] == pytest.approx(grid.flops, rel=1e-9)
  large = [(s, 100 * s.non_embedding_params, 2048) for s in map(arch.preset, doc["large_models"])]
  both = estimate.estimate(large + estimate.runs_of(c for _, c in sweep.expand(
      configlib.load("configs/sweep.py:scales=80M+145M+297M"))))
  assert [r["chip_hours"] for r in doc["all"]["rows"]] == pytest.approx(
      [r.chip_hours for r in both.rows], rel=1e-9)


def test_dry_run_prints_the_scale_table(tmp_path, capsys):
  assert cli.main(["sweep", f"--config={SWEEP}", "--root", str(tmp_path), "--dry-run",
                   "--mfu", "0.4"]) == 0
  out = capsys.readouterr().out
  est = estimate.for_configs((c for _, c in sweep.expand(configlib.load(SWEEP))), mfu=0.4)
  assert f"scale: 7 runs, {est.tokens:.3g} tokens, {est.flops:.3g} training FLOPs" in out
  assert "64 x h100-sxm  40.0%" in out and "chip-hours" in out
  # A small sweep: its minutes and its chip-hours to two figures, not "0.0 h" and "0".
  first = est.rows[0]
  assert first.chip_hours < 10 and f"{first.chip_hours:.2g}" in out
  assert f"{first.wall_s / 60:.1f} min" in out
  assert not os.listdir(tmp_path)  # a dry run writes nothing


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                    reason="the TPU runtime (libtpu, from the tpu-aot extra) is not installed")
def test_dry_run_checks_every_run_against_a_tpu_slice(tmp_path, capsys):
  one = [f"--config.runs={configlib.load(SWEEP).runs[:1]!r}"]
  assert cli.main(["sweep", f"--config={SWEEP}", *one, "--root", str(tmp_path), "--dry-run",
                   "--aot-topology", "v5e-4"]) == 0
  assert "v5e:2x2: 4 chips" in capsys.readouterr().out
  with pytest.raises(SystemExit) as exit_info:  # 4096 x 2048 tokens do not fit one v5e chip
    cli.main(["sweep", f"--config={SWEEP}", *one, "--root", str(tmp_path), "--dry-run",
              "--aot-topology", "v5e-1", "--override", "train.batch_size=4096",
              "--override", "train.seq_len=2048", "--override", "model.max_seq_len=2048"])
  assert exit_info.value.code == 1
  out = capsys.readouterr().out
  assert "DOES NOT FIT" in out and "0 of 1 run compiles fit v5e-1" in out
  assert cli.main(["sweep", f"--config={SWEEP}", "--root", str(tmp_path), "--aot-topology",
                   "v5e-4"]) == 2  # needs --dry-run
