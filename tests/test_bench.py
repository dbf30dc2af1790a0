"""lawsearch.bench: the byte count behind MBU, the records of a (tiny) paper-protocol run, the
calibration file, and the `lawsearch bench` command."""

import dataclasses
import json
import os

import pytest

from lawsearch import cli, cost
from lawsearch.arch import preset
from lawsearch.bench import calibration
from lawsearch.bench.throughput import BenchConfig, decode_bytes, run

NANO = preset("nano")
RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
                       "results")


def test_decode_bytes_is_the_sum_over_steps():
  # Step i of output_len - 1 reads all weights once and the KV cache of input_len + i positions.
  b, n_in, n_out, bpe = 3, 50, 7, 2
  w = cost.weight_bytes_read_per_step(NANO, bpe)
  kv = cost.kv_cache_bytes_per_token(NANO, bpe)
  expected = sum(w + b * (n_in + i) * kv for i in range(1, n_out))
  assert decode_bytes(NANO, b, n_in, n_out, bpe) == pytest.approx(expected, rel=1e-12)


@pytest.fixture(scope="module")
def records():
  cfg = BenchConfig(arch=NANO, batch_sizes=(2,), input_len=16, output_len=5, trials=2, warmup=1,
                    dtype="float32", decode_impl="xla")
  return cfg, run(cfg, cost.hardware("h100-sxm"), log=lambda _: None)


def test_records_are_consistent(records):
  cfg, (r,) = records
  assert r["batch"] == 2 and r["compile_s"] > 0 and r["prefill_s"] > 0 and r["decode_s"] > 0
  assert r["total_s"] == pytest.approx(r["prefill_s"] + r["decode_s"])
  assert r["output_tokens_per_s"] == pytest.approx(2 * 5 / r["total_s"])
  assert r["total_tokens_per_s"] == pytest.approx(2 * (16 + 5) / r["total_s"])
  assert r["requests_per_s"] == pytest.approx(2 / r["total_s"])
  assert r["decode_tokens_per_s"] == pytest.approx(2 * 4 / r["decode_s"])
  hw = cost.hardware("h100-sxm")
  achieved = decode_bytes(NANO, 2, 16, 5, 4) / r["decode_s"]
  assert r["mbu"] == pytest.approx(achieved / hw.hbm_bandwidth)
  roof = cost.roofline_throughput(NANO, hw, 2, 16, 5, bytes_per_element=4)
  assert r["roofline_output_tokens_per_s"] == pytest.approx(roof.output_tokens_per_s)


def test_calibration_round_trip(records, tmp_path):
  _, rows = records
  eff = calibration.calibrate(rows)
  assert eff.memory == pytest.approx(min(rows[0]["mbu"], 1.0))
  path = str(tmp_path / "cal.json")
  calibration.save_efficiency(path, "h100-sxm", eff)
  assert calibration.load_efficiency(path, "h100-sxm") == eff
  with pytest.raises(ValueError, match="no such file; write one with `lawsearch bench"):
    calibration.load_efficiency(tmp_path / "missing.json", "h100-sxm")
  with pytest.raises(ValueError, match="measured on 'h100-sxm'"):
    calibration.load_efficiency(path, "a100-40gb")
  with pytest.raises(ValueError, match="needs a chip from cost.HARDWARE"):
    calibration.calibrate([{"mbu": None}])


def test_calibrated_forecast_of_held_out_h100_runs():
  """Calibrated on the H100 runs of the 1B pair (session 3), the cost model forecasts the 3B
  pair's runs (session 1, through `lawsearch bench`) within 7%, and their Surefire / LLaMA ratio
  within 3%: the measured records are the independent reference."""
  with open(os.path.join(RESULTS, "gpu_decode_h100_heads_major.json")) as f:
    e2e = json.load(f)["e2e"]
  fit = [{"name": n, **dataclasses.asdict(preset(n)), **r}
         for n, rs in e2e.items() if n != "ratio" for r in rs]
  with open(os.path.join(RESULTS, "bench_3b_h100.json")) as f:
    held = json.load(f)
  eff = calibration.calibrate(fit)
  assert eff.compute == pytest.approx(max(r["mfu_prefill"] for r in fit))
  rows = calibration.forecast(held, "h100-sxm", eff)
  assert len(rows) == 4 and max(abs(r["error"]) for r in rows) < 0.07
  by = {(r["name"], r["batch"]): r for r in rows}
  for b in (16, 64):
    sure, base = by["surefire-3b", b], by["llama3.2-3b", b]
    measured, forecast = (sure[k] / base[k] for k in ("measured", "forecast"))
    assert forecast == pytest.approx(measured, rel=0.03)
  # Uncalibrated, the roofline is 30-43% above every one of them.
  assert min(r["error"] for r in calibration.forecast(held, "h100-sxm", cost.Efficiency())) > 0.3


def test_bench_config_rejects_bad_input():
  with pytest.raises(ValueError, match="batch_sizes"):
    BenchConfig(arch=NANO, batch_sizes=(0,))
  with pytest.raises(ValueError, match="dtype"):
    BenchConfig(arch=NANO, dtype="int8")


def test_cli_bench_writes_json_and_calibrates(tmp_path, capsys):
  out, cal = tmp_path / "bench.json", tmp_path / "cal.json"
  argv = ["bench", "--preset", "nano", "--batch", "1", "--input-len", "8", "--output-len", "3",
          "--trials", "1", "--hardware", "h100-sxm", "--out", str(out), "--calibrate", str(cal)]
  assert cli.main(argv) == 0
  text = capsys.readouterr().out
  assert "output_tokens_per_s" in text and "left blank" not in text
  rows = json.loads(out.read_text())
  assert [r["batch"] for r in rows] == [1] and rows[0]["name"] == "nano"
  # The records carry the shape, so the search can use them as its efficiency measure.
  from lawsearch import arch, search
  measured = search.MeasuredEfficiency.from_records(rows, batch=1)
  assert measured.many([arch.preset("nano")])[0] == rows[0]["output_tokens_per_s"]
  assert cli.main(["cost", "--preset", "nano", "--hardware", "h100-sxm", "--batch", "1",
                   "--calibration", str(cal)]) == 0
  assert cli.main(["bench", "--preset", "nano", "--batch", "0"]) == 2


def test_cli_bench_on_an_unlisted_chip_says_why_mbu_is_blank(capsys):
  assert cli.main(["bench", "--preset", "nano", "--batch", "1", "--input-len", "8",
                   "--output-len", "2", "--trials", "1"]) == 0
  assert "mbu and roofline left blank: cpu is not a chip in lawsearch.cost.HARDWARE" in (
      capsys.readouterr().out)
