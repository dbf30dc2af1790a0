"""Efficiency factors measured by the benchmark, stored for the cost model (json and cost only).

    lawsearch bench --preset llama3.2-1b --calibrate h100.json   # measure and store
    lawsearch cost --preset surefire-1b --hardware h100-sxm --calibration h100.json
"""

from __future__ import annotations

import dataclasses
import json

from lawsearch import cost


def calibrate(rows: list[dict]) -> cost.Efficiency:
  """Efficiency from benchmark records: the best decode MBU and prefill MFU seen, capped at 1."""
  mbu = [r["mbu"] for r in rows if r.get("mbu")]
  mfu = [r["mfu_prefill"] for r in rows if r.get("mfu_prefill")]
  if not mbu or not mfu:
    raise ValueError("calibration needs a chip from cost.HARDWARE (pass --hardware on an unknown "
                     "one) and output_len > 1")
  return cost.Efficiency(compute=min(max(mfu), 1.0), memory=min(max(mbu), 1.0))


def save_efficiency(path: str, hardware: str, eff: cost.Efficiency) -> None:
  """Writes {"hardware", "compute", "memory"} as JSON."""
  with open(path, "w") as f:
    json.dump({"hardware": hardware, **dataclasses.asdict(eff)}, f, indent=1)


def load_efficiency(path: str, hardware: str) -> cost.Efficiency:
  """The Efficiency stored at `path`, which must have been measured on `hardware`."""
  with open(path) as f:
    rec = json.load(f)
  if rec.get("hardware") != hardware:
    raise ValueError(f"calibration {path} was measured on {rec.get('hardware')!r}, not "
                     f"{hardware!r}; pass --hardware {rec.get('hardware')} or recalibrate")
  return cost.Efficiency(compute=rec["compute"], memory=rec["memory"])
