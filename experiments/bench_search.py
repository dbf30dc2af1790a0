"""Time the full 1B search (Algorithm 1) on the default grid, after compilation.

    .venv/bin/python experiments/bench_search.py [--repeats 5]

Target (issue 6): under 1 s after compilation on 2 CPU cores. Peer, measured in the same run: the
same candidates scored one at a time in Python (`cost.roofline_throughput` and the law per spec),
which is what a straightforward implementation would do.
"""

import argparse
import statistics
import time

from lawsearch import arch, cost, search
from lawsearch.laws import ConditionalLaw, float64


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  law = ConditionalLaw.paper("80m-297m")
  n = arch.preset("llama3.2-1b").non_embedding_params
  run = lambda: search.search(law, n, 1e11, 16, 64, baseline="llama3.2-1b")

  t0 = time.perf_counter()
  result = run()
  first = time.perf_counter() - t0
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
  n_cand = len(result.candidates)

  specs = [search.spec_of_row(row) for _, row in result.candidates.iterrows()]
  t0 = time.perf_counter()
  with float64():
    for spec in specs:  # the peer: one candidate at a time
      float(law.predict_xr(spec.d_over_sqrt_n, spec.mlp_attn_ratio, 1.0))
      cost.roofline_throughput(spec, "a100-40gb", 64)
  peer = time.perf_counter() - t0

  ours = statistics.median(times)
  print(f"candidates: {n_cand}; first call (compiles): {first:.2f} s")
  print(f"full search after compilation: median {ours:.3f} s over {args.repeats} "
        f"(min {min(times):.3f}, max {max(times):.3f}); target < 1 s")
  print(f"peer (score each candidate in a Python loop, scoring only): {peer:.2f} s; "
        f"ratio peer / ours = {peer / ours:.1f}x")


if __name__ == "__main__":
  main()
