"""Efficiency factors measured by the benchmark, stored for the cost model (json, arch and cost
only), and the forecast they give for benchmark records.

    lawsearch bench --preset llama3.2-1b --calibrate h100.json   # measure and store
    lawsearch cost --preset surefire-1b --hardware h100-sxm --calibration h100.json
"""

from __future__ import annotations

import dataclasses
import json

from lawsearch import cost
from lawsearch.arch import from_fields
from lawsearch import inputs
from lawsearch.errors import UserError


def calibrate(rows: list[dict]) -> cost.Efficiency:
  """Efficiency from benchmark records: the best decode MBU and prefill MFU seen, capped at 1."""
  mbu = [r["mbu"] for r in rows if r.get("mbu")]
  mfu = [r["mfu_prefill"] for r in rows if r.get("mfu_prefill")]
  if not mbu or not mfu:
    raise UserError("calibration needs a chip from cost.HARDWARE (pass --hardware on an unknown "
                     "one) and output_len > 1")
  return cost.Efficiency(compute=min(max(mfu), 1.0), memory=min(max(mbu), 1.0))


def save_efficiency(path: str, hardware: str, eff: cost.Efficiency) -> None:
  """Writes {"hardware", "compute", "memory"} as JSON."""
  with open(path, "w") as f:
    json.dump({"hardware": hardware, **dataclasses.asdict(eff)}, f, indent=1)


def load_efficiency(path: str, hardware: str) -> cost.Efficiency:
  """The Efficiency stored at `path`, which must have been measured on `hardware`."""
  rec = inputs.read_json(path, "calibration file", hint=(
      f"write one with `lawsearch bench ... --calibrate {path}` on the hardware it describes"))
  inputs.require(rec, f"calibration file {path}", {"hardware": "string", "compute": "number",
                                                   "memory": "number"})
  if rec.get("hardware") != hardware:
    raise UserError(f"calibration {path} was measured on {rec.get('hardware')!r}, not "
                     f"{hardware!r}; pass --hardware {rec.get('hardware')} or recalibrate")
  return cost.Efficiency(compute=rec["compute"], memory=rec["memory"])


def forecast(rows: list[dict], hardware: str, eff: cost.Efficiency,
             bytes_per_element: float = 2) -> list[dict]:
  """The cost model's output tokens/s beside the measured, for each benchmark record.

  rows: records as `lawsearch bench --out` writes them (the ArchSpec fields, batch, input_len,
    output_len, output_tokens_per_s; 16-bit weights and cache unless bytes_per_element says
    otherwise). Returns {name, batch, measured, forecast, error = forecast / measured - 1}.
  """
  out = []
  for r in rows:
    t = cost.roofline_throughput(from_fields(r), hardware, r["batch"], r["input_len"],
                                 r["output_len"],
                                 bytes_per_element=bytes_per_element, efficiency=eff)
    measured = r["output_tokens_per_s"]
    out.append({"name": r.get("name", ""), "batch": r["batch"], "measured": measured,
                "forecast": t.output_tokens_per_s, "error": t.output_tokens_per_s / measured - 1})
  return out
