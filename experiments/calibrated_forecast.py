"""How well the calibrated cost model forecasts measured generation throughput (no GPU needed).

    .venv/bin/python experiments/calibrated_forecast.py [--plot forecast.png]

Calibrates `lawsearch.cost` on one set of GPU benchmark records (`lawsearch.bench.calibration.
calibrate`: the best prefill MFU and decode MBU seen) and forecasts every record, the calibration
set and a held-out set, as output tokens/s and as the Surefire / LLaMA ratio that the architecture
search ranks by. Defaults: calibrate on session 3's H100 runs of llama3.2-1b and surefire-1b
(`experiments/gpu_decode.py`, batch 16-256), hold out the 3B pair measured through `lawsearch
bench` in session 1 (batch 16 and 64); all 4096 in / 1024 out, bfloat16.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

from lawsearch import cost
from lawsearch.arch import preset
from lawsearch.bench import calibration

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PAIRS = (("llama3.2-1b", "surefire-1b"), ("llama3.2-3b", "surefire-3b"))


def load_records(path: str) -> list[dict]:
  """Benchmark records with their ArchSpec fields: `lawsearch bench --out` files (a list) or
  `experiments/gpu_decode.py` results (per-preset lists under "e2e")."""
  with open(path) as f:
    data = json.load(f)
  if isinstance(data, list):
    return data
  return [{"name": name, **dataclasses.asdict(preset(name)), **r}
          for name, rs in data["e2e"].items() if name != "ratio" for r in rs]


def ratios(rows: list[dict], key: str) -> list[tuple[str, int, float]]:
  """(pair, batch, surefire / llama) for every batch measured for both models of a pair."""
  by = {(r["name"], r["batch"]): r[key] for r in rows}
  return [(f"{sure} / {base}", b, by[sure, b] / by[base, b])
          for base, sure in PAIRS for (n, b) in sorted(by) if n == base and (sure, b) in by]


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--calibrate-on", nargs="+",
                 default=[os.path.join(RESULTS, "gpu_decode_h100_heads_major.json")])
  p.add_argument("--held-out", nargs="+", default=[os.path.join(RESULTS, "bench_3b_h100.json")])
  p.add_argument("--hardware", default="h100-sxm")
  p.add_argument("--plot", help="write a forecast-vs-measured scatter plot (PNG) here")
  a = p.parse_args()

  fit = [r for path in a.calibrate_on for r in load_records(path)]
  held = [r for path in a.held_out for r in load_records(path)]
  eff = calibration.calibrate(fit)
  print(f"calibrated on {len(fit)} records ({', '.join(sorted({r['name'] for r in fit}))}): "
        f"compute {eff.compute:.3f}, memory {eff.memory:.3f} of {a.hardware}'s peaks")
  sets = {"calibration": calibration.forecast(fit, a.hardware, eff),
          "held out": calibration.forecast(held, a.hardware, eff)}
  roofline = {s: calibration.forecast(rows, a.hardware, cost.Efficiency())
              for s, rows in (("calibration", fit), ("held out", held))}
  print(f"\n{'set':12s} {'model':12s} {'batch':>5s} {'measured':>9s} {'roofline':>9s} "
        f"{'forecast':>9s} {'error':>7s}   (output tokens/s)")
  for name, rows in sets.items():
    for r, roof in zip(rows, roofline[name]):
      print(f"{name:12s} {r['name']:12s} {r['batch']:5d} {r['measured']:9.0f} "
            f"{roof['forecast']:9.0f} {r['forecast']:9.0f} {r['error']:+7.1%}")
    errors = [abs(r["error"]) for r in rows]
    print(f"{name:12s} largest |error| {max(errors):.1%}, mean {sum(errors) / len(errors):.1%}")
  print(f"\n{'set':12s} {'pair':28s} {'batch':>5s} {'measured':>9s} {'forecast':>9s} {'error':>7s}"
        "   (ratio of output tokens/s)")
  for name, rows in sets.items():
    for (pair, b, meas), (_, _, pred) in zip(ratios(rows, "measured"), ratios(rows, "forecast")):
      print(f"{name:12s} {pair:28s} {b:5d} {meas:9.3f} {pred:9.3f} {pred / meas - 1:+7.1%}")

  if a.plot:
    from lawsearch.report.figure import subplots  # pylint: disable=import-outside-toplevel

    fig, ax = subplots(figsize=(5.5, 5))
    for (name, rows), marker in zip(sets.items(), ("o", "s")):
      for model in sorted({r["name"] for r in rows}):
        pts = [(r["measured"], r["forecast"]) for r in rows if r["name"] == model]
        ax.scatter(*zip(*pts), marker=marker, label=f"{model} ({name})")
    lo = min(min(r["measured"], r["forecast"]) for rows in sets.values() for r in rows) * 0.8
    hi = max(max(r["measured"], r["forecast"]) for rows in sets.values() for r in rows) * 1.2
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="forecast = measured")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel="measured output tokens/s", ylabel="calibrated cost model, output tokens/s",
           title=f"{a.hardware}: calibrated on {len(fit)} runs, {len(held)} held out")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.plot, dpi=120)
    print(f"\nplot: {a.plot}")


if __name__ == "__main__":
  main()
