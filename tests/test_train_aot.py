"""Ahead-of-time compiles of the sharded train step for Cloud TPU topologies on CPU (needs the TPU
runtime: pip install -e '.[tpu-aot]'; skipped without it)."""

import importlib.util

import pytest

from lawsearch import cli, configlib
from lawsearch.cost import HARDWARE
from lawsearch.train import aot

CONFIG = "configs/train.py:preset=nano,data=synthetic"
ARGS = ["--config.train.steps=10", "--config.train.batch_size=16", "--config.train.seq_len=64"]
needs_runtime = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="the TPU runtime (libtpu, from the tpu-aot extra) is not installed")


def test_topology_names():
  assert aot.topology_name("v5p-8") == ("v5p:2x2x1", "tpu-v5p")  # v5p names count TensorCores
  assert aot.topology_name("v5p-64") == ("v5p:2x4x4", "tpu-v5p")
  assert aot.topology_name("v5e-16") == ("v5e:4x4", "tpu-v5e")
  assert aot.topology_name("v6e:2x4") == ("v6e:2x4", "tpu-v6e")
  assert aot.topology_name("v5e-1") == ("v5e:1x1", "tpu-v5e")
  with pytest.raises(ValueError, match="no v5p slice named 'v5p-12'"):
    aot.topology_name("v5p-12")
  with pytest.raises(ValueError, match="unknown TPU topology"):
    aot.topology_name("h100-8")


@needs_runtime
def test_v5p_8_compiles_and_fits():
  config = configlib.load(CONFIG, ARGS)
  report = aot.compile_for_topology(config, "v5p-8")
  assert (report.topology, report.n_devices) == ("v5p:2x2x1", 4)
  # Each chip holds at least its 1/4 share of the f32 params and both Adam moments (FSDP over 4;
  # TPU tiling pads small arrays, so only the lower bound is exact), and everything it needs fits
  # the 95 GiB of a v5p chip.
  state_bytes = 3 * 4 * 131392
  assert report.memory["argument_size_in_bytes"] >= state_bytes / 4
  assert report.bytes_per_device >= report.memory["temp_size_in_bytes"] > 0
  assert report.fits and report.hbm_bytes == HARDWARE["tpu-v5p"].hbm_bytes


@needs_runtime
def test_cli_reports_v5e_4x4_before_renting(capsys):
  assert cli.main(["train", f"--config={CONFIG}", *ARGS, "--aot-topology", "v5e-16"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("v5e:4x4: 16 chips, compiled in") and "GiB HBM (tpu-v5e): fits" in out


@needs_runtime
def test_cli_says_a_config_does_not_fit_and_exits_1(capsys):
  # 4096 x 2048 tokens on one v5e chip: the compiler itself runs out of HBM; the user gets the
  # verdict and what to change, not a traceback. A one-chip slice also needs its own host shape.
  too_big = ["--config.train.steps=10", "--config.train.batch_size=4096",
             "--config.train.seq_len=2048"]
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["train", f"--config={CONFIG}", *too_big, "--aot-topology", "v5e-1"])
  assert exit_info.value.code == 1
  out = capsys.readouterr().out
  assert out.startswith("v5e:1x1: 1 chip, the compiler ran out of HBM (")
  assert "DOES NOT FIT; shrink the batch per chip" in out
