"""First-call latency: a fresh process's first fit and first search, with and without the
persistent compilation cache (lawsearch.compilation_cache).

    .venv/bin/python experiments/bench_first_call.py [--repeats 3] [--out FILE]

Each measurement is a new Python process that imports lawsearch, fits the conditional law on the
synthetic 80M-297M sweep (jaxopt, float64) and searches at 1B, timing each step. Three cases, each
repeated: cache off; cache on and empty (the first process, which also fills it); cache on and
filled by that first process (every later process: a Colab runtime restart, a second CLI call).
Prints the medians and the ratio of the filled cache's first calls to the uncached ones. Writes
experiments/results/first_call.json by default.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = """
import json, time
t0 = time.perf_counter()
import lawsearch
lawsearch.enable_compilation_cache()
from lawsearch import arch, search
from lawsearch.laws import ConditionalLaw
from lawsearch.laws.synthetic import synthetic_sweep
t1 = time.perf_counter()
law = ConditionalLaw.fit(synthetic_sweep(scales=("80M", "145M", "297M"), seed=0))
t2 = time.perf_counter()
n = arch.preset("llama3.2-1b").non_embedding_params
search.search(law, n, 100 * n, 16, 64, baseline="llama3.2-1b")
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_fit_s": t2 - t1, "first_search_s": t3 - t2}))
"""


def measure(cache: str) -> dict:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "LAWSEARCH_COMPILATION_CACHE": cache}
  done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env,
                        check=True)
  return json.loads(done.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=os.path.join(HERE, "results", "first_call.json"))
  args = parser.parse_args()
  runs = {"off": [], "empty": [], "filled": []}
  for _ in range(args.repeats):  # interleaved, so load changes hit every case alike
    directory = tempfile.mkdtemp(prefix="lawsearch-cc-")
    try:
      runs["off"].append(measure("off"))
      runs["empty"].append(measure(directory))
      runs["filled"].append(measure(directory))
    finally:
      shutil.rmtree(directory)
  medians = {case: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
             for case, rows in runs.items()}
  ratios = {k: medians["filled"][k] / medians["off"][k] for k in ("first_fit_s", "first_search_s")}
  for case, m in medians.items():
    print(f"cache {case:6s}: import {m['import_s']:.2f} s, first fit {m['first_fit_s']:.2f} s, "
          f"first search {m['first_search_s']:.2f} s (median of {args.repeats})")
  print(f"filled cache / no cache: first fit {ratios['first_fit_s']:.2f}x, first search "
        f"{ratios['first_search_s']:.2f}x the time")
  with open(args.out, "w") as f:
    json.dump({"command": "experiments/bench_first_call.py", "repeats": args.repeats,
               "medians": medians, "ratio_filled_over_off": ratios, "runs": runs}, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
