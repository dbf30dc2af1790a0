"""Roofline-predicted throughput ratio Surefire / LLaMA-3.2 in the paper's protocol.

    .venv/bin/python experiments/roofline_ratios.py [--input-len 4096] [--output-len 1024]

Prints output tokens/s of llama3.2-{1b,3b} and surefire-{1b,3b} on a100-40gb and h200 across
batch sizes 1..256, and the ratio, next to the paper's measured gains (PAPER.md section 2).
"""

import argparse

from lawsearch import arch, cost

PAIRS = (("llama3.2-1b", "surefire-1b"), ("llama3.2-3b", "surefire-3b"))
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PAPER = {"a100-40gb": "paper (vLLM, A100-40GB): up to +42%",
         "h200": "paper (SGLang, H200): +46.9% at 1B, +16.6% at 3B"}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--input-len", type=int, default=4096)
  parser.add_argument("--output-len", type=int, default=1024)
  args = parser.parse_args()
  for hw in ("a100-40gb", "h200"):
    print(f"\n{hw}: {args.input_len} in / {args.output_len} out, output tokens/s (roofline)  "
          f"[{PAPER[hw]}]")
    print(f"{'batch':>6} " + " ".join(f"{b:>14} {s:>14} {'ratio':>6}" for b, s in PAIRS))
    for batch in BATCHES:
      cells = []
      for base, sure in PAIRS:
        tb, ts = (cost.roofline_throughput(arch.preset(n), hw, batch, args.input_len,
                                           args.output_len) for n in (base, sure))
        fmt = lambda t: f"{t.output_tokens_per_s:14.0f}" if t.fits else f"{'OOM>' + str(t.max_batch):>14}"
        ratio = (f"{ts.output_tokens_per_s / tb.output_tokens_per_s:6.2f}" if tb.fits and ts.fits
                 else f"{'-':>6}")
        cells.append(f"{fmt(tb)} {fmt(ts)} {ratio}")
      print(f"{batch:>6} " + " ".join(cells))


if __name__ == "__main__":
  main()
