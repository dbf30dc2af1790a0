"""lawsearch: the LLM architecture that meets a loss target at the lowest serving cost.

Each subcommand is added by one `_add_<name>` function whose handler imports its module lazily,
so `lawsearch --help` and the light subcommands start fast.

Bad input (a `lawsearch.errors.UserError`, or a path that does not exist or is the wrong kind)
exits with status 2 and a one-line message; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
import warnings

from lawsearch import compilation_cache, hostmem, inputs
from lawsearch.errors import UserError
from lawsearch.report.table import format_table

# attention.IMPLS and transformer.DTYPES plus "auto", repeated here so `lawsearch --help` need not
# import jax (tests keep the lists equal).
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "grouped")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class UsageError(UserError):
  """A bad command line; reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors instead of a usage dump."""

  def error(self, message):
    raise UsageError(message)


# -- shared argument helpers ---------------------------------------------------------------------
def _int_at_least(low: int):
  """argparse type: an integer >= low (the error names the flag)."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
      raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value
  return parse


def _positive(text: str) -> float:
  """argparse type: a finite number > 0."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
  if not (math.isfinite(value) and value > 0):
    raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
  return value


def _held_out_fraction(text: str) -> float:
  """argparse type: a number in [0, 1) (0: no held-out split)."""
  try:
    if float(text) == 0:
      return 0.0
  except ValueError:
    pass  # _fraction says what is wrong
  return _fraction(text)


def _fraction(text: str) -> float:
  """argparse type: a number strictly between 0 and 1."""
  value = _positive(text)
  if value >= 1:
    raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
  return value


def _add_spec_flags(p: argparse.ArgumentParser) -> None:
  """Flags describing one architecture: a preset, or explicit fields (which override the preset)."""
  p.add_argument("--preset", action="append", default=[],
                 help="named architecture (repeatable); see `lawsearch arch --list`")
  for field in ("n-layers", "d-model", "n-heads", "n-kv-heads", "head-dim", "ffn-dim",
                "vocab-size"):
    p.add_argument(f"--{field}", type=int)
  p.add_argument("--untied", action="store_true", help="separate output head (not tied)")
  p.add_argument("--workdir", action="append", default=[],
                 help="a run directory's shape (its config.json; repeatable), e.g. an imported "
                      "model's (lawsearch import-hf)")


def _run_spec(workdir: str):
  """The ArchSpec of a run directory, from its config.json."""
  from lawsearch import arch, paths
  from lawsearch.rundir import RunDir

  run = RunDir(workdir)
  if not paths.exists(run.config):
    raise UserError(f"--workdir {workdir}: no {RunDir.CONFIG}; give a `lawsearch train` or "
                    "import-hf run")
  return arch.from_fields(run.read_json(run.config)["model"]["arch"])


def _specs_from_args(args) -> list[tuple[str, "object"]]:
  """(name, ArchSpec) pairs from --preset and --workdir flags and/or explicit shape flags."""
  from lawsearch import arch

  fields = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab_size")
  given = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
  if args.untied:
    given["tie_embeddings"] = False
  specs = [(name, arch.preset(name).replace(**given)) for name in args.preset]
  specs += [(os.path.basename(os.path.normpath(w)), _run_spec(w).replace(**given))
            for w in args.workdir]
  if not specs:
    missing = [f for f in fields if f not in given]
    if missing:
      raise UsageError("give --preset NAME or every shape flag; missing: "
                       + ", ".join("--" + m.replace("_", "-") for m in missing))
    specs = [("custom", arch.ArchSpec(**given))]
  return specs


# -- arch ----------------------------------------------------------------------------------------
def _run_arch(args) -> None:
  from lawsearch import arch

  if args.list:
    print("\n".join(arch.PRESETS))
    return
  rows = [{"name": name, **spec.describe()} for name, spec in _specs_from_args(args)]
  if args.json:
    print(json.dumps(rows, indent=2))
    return
  print(format_table(rows, ["name", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim",
                      "ffn_dim", "gqa", "non_embedding_params", "total_params", "mlp_attn_ratio",
                      "d_over_sqrt_n"]))


def _add_arch(sub) -> None:
  p = sub.add_parser("arch", help="show an architecture's shape and parameter arithmetic")
  _add_spec_flags(p)
  p.add_argument("--list", action="store_true", help="list the named presets")
  p.add_argument("--json", action="store_true")
  p.set_defaults(run=_run_arch)


# -- cost ----------------------------------------------------------------------------------------
def _run_cost(args) -> None:
  from lawsearch import cost

  if args.breakdown:
    return _run_cost_breakdown(args)
  args.batch = args.batch or [1, 8, 32, 64, 128, 256]
  hw = cost.hardware(args.hardware)
  efficiency = cost.Efficiency()
  if args.calibration:
    from lawsearch.bench import calibration

    efficiency = calibration.load_efficiency(args.calibration, hw.name)
  rows = []
  for name, spec in _specs_from_args(args):
    for batch in args.batch:
      t = cost.roofline_throughput(spec, hw, batch, args.input_len, args.output_len,
                                   efficiency=efficiency)
      rows.append({"name": name, "batch": batch, "fits": t.fits, "max_batch": t.max_batch,
                   "memory_GiB": t.memory_bytes / 2**30, "prefill_s": t.prefill_s,
                   "decode_s": t.decode_s, "output_tok_s": t.output_tokens_per_s,
                   "total_tok_s": t.total_tokens_per_s})
  if args.json:
    print(json.dumps(rows, indent=2))
    return
  print(f"roofline on {hw.name}: {args.input_len} input, {args.output_len} output tokens")
  print(format_table(rows, ["name", "batch", "fits", "max_batch", "memory_GiB", "prefill_s",
                      "decode_s", "output_tok_s", "total_tok_s"]))


def _run_cost_breakdown(args) -> None:
  """`lawsearch cost --breakdown`: each component's share of a decode step, and the claims."""
  from lawsearch import cost, regimes

  hw = cost.hardware(args.hardware)
  if args.plots:
    inputs.output_dir(args.plots, "--plots")
  specs = dict(_specs_from_args(args)) if (args.preset or args.d_model) else regimes.family()
  table = regimes.breakdown_table(specs, hw, args.context, args.batch or regimes.BATCHES)
  if args.json:
    print(table.to_json(orient="records", indent=1))
    return
  print(f"one decode step on {hw.name}: share of roofline time per component (FLOP shares "
        "when compute-bound, byte shares when memory-bound); attention over the cache = reading "
        "the KV cache")
  shown = {k: label for k, label in cost.COMPONENTS.items() if f"time:{k}" in table}
  rows = [{"name": r["name"], "total(B)": r["total_params"] / 1e9, "context": r["context"],
           "batch": r["batch"], "bound": r["bound"], "step_ms": r["step_ms"],
           **{label: f"{r['time:' + k]:.0%}" for k, label in shown.items()},
           "MLP FLOPs": f"{r['flops:mlp']:.0%}"} for _, r in table.iterrows()]
  print(format_table(rows, list(rows[0])))
  print("\nthe brief's claims on these models ('dominates': more than half):")
  verdicts = regimes.claims(table)
  verdicts["holds"] = verdicts["holds"].map({True: "yes", False: "NO", None: "-"})
  print(format_table(verdicts.to_dict("records"), ["claim", "scenario", "holds", "evidence",
                                                   "crossover"]))
  if args.plots:
    from lawsearch.report import regimes as plots

    for what in ("time", "flops"):
      print("wrote " + plots.breakdown_plot(table, os.path.join(args.plots, f"{what}.png"), what))


def _add_cost(sub) -> None:
  p = sub.add_parser("cost", help="roofline generation throughput across batch sizes, or "
                     "(--breakdown) where a decode step's cost goes")
  _add_spec_flags(p)
  p.add_argument("--hardware", default="a100-40gb")
  p.add_argument("--batch", type=_int_at_least(1), nargs="+",
                 help="batch sizes (default 1 8 32 64 128 256; --breakdown: 1 64 256)")
  p.add_argument("--breakdown", action="store_true",
                 help="share of decode FLOPs, bytes and time per component at --context, for the "
                      "presets given or the LLaMA family from 135M to 405B")
  p.add_argument("--context", type=_int_at_least(1), nargs="+", default=[4096, 32768, 131072],
                 help="KV lengths of --breakdown")
  p.add_argument("--plots", metavar="DIR", help="--breakdown: write time.png and flops.png here")
  p.add_argument("--input-len", type=_int_at_least(1), default=4096)
  p.add_argument("--output-len", type=_int_at_least(1), default=1024)
  p.add_argument("--calibration", help="efficiency file from `lawsearch bench --calibrate`")
  p.add_argument("--json", action="store_true")
  p.set_defaults(run=_run_cost)


# -- search --------------------------------------------------------------------------------------
def _load_law(text: str):
  from lawsearch.laws import ConditionalLaw

  if text.startswith("paper-"):
    return ConditionalLaw.paper(text.removeprefix("paper-"))
  return ConditionalLaw.from_json(text)


def _run_search(args) -> None:
  from lawsearch import search
  from lawsearch.report import search_report

  inputs.output_dir(args.out, "--out")
  if args.measured:
    records = inputs.read_json(args.measured, "measurements file", "list")
    try:
      measure = search.MeasuredEfficiency.from_records(records, batch=args.batch)
    except UserError as e:
      raise UserError(f"measurements file {args.measured}: {e}") from None
  else:
    measure = search.RooflineEfficiency(args.hardware, args.batch, args.input_len,
                                        args.output_len)
  accuracy = None
  if args.accuracy_law:  # read before the search: a bad file is refused before any work
    from lawsearch.laws.accuracy import AccuracyLaw

    accuracy = AccuracyLaw.from_json(args.accuracy_law)
  result = search.search(
      _load_law(args.law), args.params, args.tokens, args.layers, args.head_dim,
      loss_target=args.target, baseline=args.baseline, efficiency=measure, l_opt=args.l_opt,
      tolerance=args.tolerance, max_gqa=args.max_gqa, vocab_size=args.vocab_size)
  print(search_report.summary(result, args.pareto_points, accuracy))
  picks = None
  if args.lambdas:
    from lawsearch import cost, tradeoff

    power = args.power_w
    if power is None and args.cost_unit == "J/token" and not args.measured:
      power = cost.hardware(args.hardware).power_w
    costs = tradeoff.InferenceCost(args.cost_unit, power, args.price_per_hour)
    picks = tradeoff.penalised(result, args.lambdas, costs)
    print(search_report.penalised_summary(picks, result))
  written = search_report.save(result, args.out, penalised=picks)
  if "mla" in args.attention:
    from lawsearch import attention_search
    from lawsearch.report import attention

    evaluator = (None if args.mla_loss_factor is None
                 else attention_search.mla_loss_factor(result, args.mla_loss_factor))
    both = attention_search.compare(
        result, kv_lora_ranks=args.kv_lora_ranks or [2 * args.head_dim, 4 * args.head_dim,
                                                     8 * args.head_dim],
        q_lora_rank=args.q_lora_rank, tolerance=args.tolerance, mla_loss=evaluator)
    print(attention.summary(both))
    written += attention.save(both, args.out)
  print("\nwrote " + ", ".join(written))


def _ints(text: str) -> list[int]:
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
  if not values or any(v < 1 for v in values):
    raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
  return values


def _lambdas(text: str) -> list[float]:
  try:
    values = [float(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"--lambda takes comma-separated numbers, got {text!r}")
  if not values or any(not v >= 0 for v in values):
    raise argparse.ArgumentTypeError(f"--lambda values must be >= 0, got {text!r}")
  return values


def _add_search(sub) -> None:
  p = sub.add_parser("search", help="Algorithm 1: the most efficient architecture meeting a loss")
  p.add_argument("--law", default="paper-80m-297m",
                 help="paper-80m-297m | paper-1b-only | a law JSON file from `lawsearch fit`")
  p.add_argument("--params", type=_positive, required=True, help="non-embedding parameter budget N")
  p.add_argument("--tokens", type=_positive, required=True, help="training tokens D")
  p.add_argument("--layers", type=_int_at_least(1), required=True)
  p.add_argument("--head-dim", type=_int_at_least(1), required=True)
  p.add_argument("--baseline", help="preset whose predicted loss is the target")
  p.add_argument("--target", type=_positive, help="loss target (absolute with --l-opt)")
  p.add_argument("--l-opt", type=_positive, help="L_opt(N, D) at the budget; without it losses "
                 "are relative")
  p.add_argument("--hardware", default="a100-40gb")
  p.add_argument("--batch", type=_int_at_least(1), default=64)
  p.add_argument("--input-len", type=_int_at_least(1), default=4096)
  p.add_argument("--output-len", type=_int_at_least(1), default=1024)
  p.add_argument("--measured", help="JSON of measured throughput (`lawsearch bench --out`); "
                 "the records at --batch are used")
  p.add_argument("--tolerance", type=_fraction, default=0.01)
  p.add_argument("--max-gqa", type=_int_at_least(1), default=16)
  p.add_argument("--vocab-size", type=_int_at_least(1), default=128256)
  p.add_argument("--pareto-points", type=_int_at_least(1), default=5)
  p.add_argument("--lambda", dest="lambdas", type=_lambdas, metavar="L1,L2,...",
                 help="also minimise loss + lambda * cost / (baseline's cost) for each lambda")
  p.add_argument("--cost-unit", choices=("s/token", "J/token", "$/Mtoken"), default="s/token",
                 help="the cost --lambda reports (all normalise to the same picks)")
  p.add_argument("--power-w", type=_positive, help="serving system's watts for J/token (default: "
                 "the chip's datasheet maximum)")
  p.add_argument("--price-per-hour", type=_positive, help="serving system's dollars per hour for "
                 "$/Mtoken")
  p.add_argument("--accuracy-law", metavar="FILE", help="from `lawsearch fit-accuracy`: print "
                 "each pick's predicted mean accuracy (needs absolute losses: --l-opt)")
  p.add_argument("--attention", choices=("gqa", "gqa,mla"), default="gqa",
                 help="gqa,mla: also the best multi-head latent attention shape at the target, "
                 "beside the best GQA one (attention.png, attention.json)")
  p.add_argument("--kv-lora-ranks", type=_ints, metavar="R1,R2,...",
                 help="MLA latent ranks to enumerate (default: 2, 4 and 8 x head_dim)")
  p.add_argument("--q-lora-rank", type=_int_at_least(0), default=0,
                 help="MLA query latent rank (0: no query compression)")
  p.add_argument("--mla-loss-factor", type=_positive, help="an MLA shape's loss = the law's "
                 "prediction x this (fitted from MLA and GQA runs; without it MLA is assumed "
                 "loss-neutral)")
  p.add_argument("--out", default="out/search")
  p.set_defaults(run=_run_search)


# -- demo ----------------------------------------------------------------------------------------
def _run_demo(args) -> None:
  from lawsearch import demo

  inputs.output_dir(args.out, "--out")
  demo.run(args.out, args.hardware, args.batch, synthetic=args.synthetic, results=args.results)


def _add_demo(sub) -> None:
  p = sub.add_parser("demo", help="the main job on the embedded defaults")
  p.add_argument("--out", default="out/demo")
  p.add_argument("--hardware", default="a100-40gb", help="for the paper's models' table")
  p.add_argument("--batch", type=_int_at_least(1), default=64)
  p.add_argument("--synthetic", action="store_true",
                 help="fit a synthetic sweep drawn from the paper's law and search at 1B, "
                      "instead of the CPU replication's real runs")
  p.add_argument("--results", help="a CPU replication's directory with runs.csv (and "
                 "hardware.json) (default: the copy shipped with the package, "
                 "lawsearch/data/cpu_replication)")
  p.set_defaults(run=_run_demo)


# -- data ----------------------------------------------------------------------------------------
def _run_data(args) -> None:
  from lawsearch.data import tokens

  spec = tokens.DataSpec(source=args.source, path=args.path or "", tokenizer=args.tokenizer,
                         vocab_size=args.vocab_size, token_dtype=args.token_dtype or "",
                         heldout_fraction=args.heldout_fraction, cache_dir=args.cache_dir or "")
  toks = tokens.build(spec)
  meta = toks.meta
  print(f"tokens: {toks.root}")
  print(f"  vocab {meta['vocab_size']} ({meta['dtype']}), tokenizer {meta['tokenizer'] or '-'}")
  print(f"  train {meta['n_tokens']['train']:,} tokens, held-out {meta['n_tokens']['heldout']:,}"
        + (f", from {meta['n_chars']:,} characters in {meta['n_documents']} documents"
           if "n_chars" in meta else ""))


def _add_data(sub) -> None:
  p = sub.add_parser("data", help="build the training corpus and its token files")
  actions = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
  q = actions.add_parser("prepare", help="fetch, clean, tokenize (cached: a 2nd call does nothing)")
  q.add_argument("--source", default="default",
                 choices=("default", "text", "tokens", "arrayrecord"))
  q.add_argument("--path", help="input of --source text|tokens|arrayrecord: file, dir or glob")
  q.add_argument("--tokenizer", default="bpe",
                 help="bpe (train one here), bytes, or a tiktoken/sentencepiece/tokenizers file")
  q.add_argument("--vocab-size", type=_int_at_least(2), default=4096,
                 help="BPE vocabulary (tiny preset: 4096)")
  q.add_argument("--token-dtype", choices=("uint16", "uint32"), help="raw .bin token input only")
  q.add_argument("--heldout-fraction", type=_held_out_fraction, default=0.01)
  q.add_argument("--cache-dir", help="default: $LAWSEARCH_CACHE or ~/.cache/lawsearch")
  q.set_defaults(run=_run_data)


def _run_train(args) -> None:
  from lawsearch import configlib

  config = configlib.load(args.config, args.config_overrides, groups=TRAIN_GROUPS)
  if args.aot_topology:
    from lawsearch.train import aot

    reports = [aot.compile_for_topology(config, topology) for topology in args.aot_topology]
    for report in reports:
      print(report.summary())
    if not all(report.fits for report in reports):
      sys.exit(1)
    return
  if not args.workdir:
    raise UsageError("--workdir is required (the run directory; an existing one resumes)")
  from lawsearch.train import loop

  try:
    record = loop.run(config, args.workdir, progress=not args.no_progress, repair=args.repair)
  except loop.NonFiniteLossError as e:
    print(f"lawsearch: {e}", file=sys.stderr)
    sys.exit(1)
  print(json.dumps(record.to_dict()))


def _add_train(sub) -> None:
  p = sub.add_parser("train", help="train one model from an ml-collections config (resumes)",
                     description="Dotted overrides: --config.train.steps=200 (use '=').")
  p.add_argument("--config", required=True,
                 help="configs/train.py[:ARG], e.g. configs/train.py:preset=tiny")
  p.add_argument("--workdir",
                 help="run directory: config.json, metrics.jsonl, checkpoints/, result.json")
  p.add_argument("--aot-topology", action="append", default=[],
                 help="compile for a TPU slice instead of training and say whether it fits; exit "
                      "status 1 when one does not (v5p-64, v5e-16; repeatable)")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.add_argument("--repair", action="store_true", help=REPAIR_HELP)
  p.set_defaults(run=_run_train)


# -- sweep ---------------------------------------------------------------------------------------
def _run_sweep(args) -> None:
  from lawsearch import configlib, paths
  from lawsearch.train import sweep

  if paths.exists(args.root) and not paths.is_dir(args.root):
    raise UsageError(f"--root {args.root} is a file; give the sweep's directory")
  config = configlib.load(args.config, args.config_overrides, groups=("train_config", "runs"))
  if args.status:
    _print_sweep_status(sweep.status(config, args.root, args.override, args.stale_s))
    return
  if args.slurm or args.slurm_script:
    _slurm_sweep(args, config)
    return
  if args.aot_topology and not args.dry_run:
    raise UsageError("--aot-topology checks the runs against a slice without training: add "
                     "--dry-run")
  records = sweep.run(config, args.root, overrides=args.override, dry_run=args.dry_run,
                      progress=not args.no_progress, shard=sweep.parse_shard(args.shard),
                      retry_failed=args.retry_failed, worker=args.worker,
                      heartbeat_s=args.heartbeat_s, stale_s=args.stale_s, wait=not args.no_wait,
                      repair=args.repair)
  if args.dry_run:
    planned = sweep.plan(config, args.root, args.override, sweep.parse_shard(args.shard))
    _print_sweep_estimate(planned, args.mfu)
    if args.aot_topology and not _sweep_fits(planned, args.aot_topology):
      sys.exit(1)
    return
  if records:
    print(format_table([r.to_dict() for r in records],
                       ["n_params", "d_model", "mlp_attn_ratio", "d_over_sqrt_n", "tokens", "loss",
                        "train_loss"]))
    print(f"next: lawsearch fit --runs {args.root}")
  failed = sweep.failures(sweep.plan(config, args.root, args.override,
                                     sweep.parse_shard(args.shard)))
  if failed:
    print(f"lawsearch sweep: {len(failed)} run(s) failed (--retry-failed retries them):\n"
          + "\n".join(f"  {name}: {error.splitlines()[0][:200]}" for name, error in failed),
          file=sys.stderr)
    sys.exit(1)


def _slurm_sweep(args, config) -> None:
  """`lawsearch sweep --slurm`: the sweep as a job array of workers (or its script, printed)."""
  from lawsearch.train import slurm

  res = slurm.SlurmResources.from_config(config.get("slurm"), workers=args.workers)
  sweep_args = [a for o in args.override for a in ("--override", o)] + [
      a for a in args.config_overrides if not a.startswith("--config.slurm.")] + [
      "--heartbeat-s", f"{args.heartbeat_s:g}", "--stale-s", f"{args.stale_s:g}"] + (
      ["--retry-failed"] if args.retry_failed else []) + (["--repair"] if args.repair else [])
  log_dir = os.path.abspath(args.slurm_logs)
  script = slurm.sbatch_script(res, config=args.config, root=args.root, log_dir=log_dir,
                               sweep_args=sweep_args)
  if args.slurm_script:
    print(script, end="")
    return
  job = slurm.submit(script, log_dir)
  print(f"submitted job array {job}: {res.workers} worker(s) of {res.nodes} node(s) x "
        f"{res.tasks_per_node} task(s); logs in {log_dir}\n"
        f"watch it: lawsearch sweep --config={args.config} --root {args.root} --status")


def _print_sweep_estimate(planned, mfu) -> None:
  from lawsearch.train import estimate

  est = estimate.for_configs([p.config for p in planned],
                             **({"mfu": mfu, "mfu_source": "--mfu"} if mfu else {}))
  rows = [{"cluster": f"{r.chips} x {r.hardware}", "MFU": f"{r.mfu:.1%}",
           "wall time": f"{r.wall_s / 86400:.2f} d" if r.wall_s >= 86400 else
           f"{r.wall_s / 3600:.1f} h", "chip-hours": f"{r.chip_hours:,.0f}"} for r in est.rows]
  print(f"\nscale: {est.runs} runs, {est.tokens:.3g} tokens, {est.flops:.3g} training FLOPs "
        f"(MFU {est.mfu_source}; wall time assumes perfect packing and linear scaling: a lower "
        "bound)")
  print(format_table(rows, list(rows[0])))


def _sweep_fits(planned, topologies) -> bool:
  """Compiles every run for each topology ahead of time; prints which fit; whether all do."""
  from lawsearch.train import aot

  fits = 0
  for topology in topologies:
    for p in planned:
      report = aot.compile_for_topology(p.config, topology)
      fits += report.fits
      print(f"{p.name}: {report.summary()}", flush=True)
  total = len(planned) * len(topologies)
  print(f"{fits} of {total} run compiles fit {', '.join(topologies)}")
  return fits == total


def _print_sweep_status(st) -> None:
  def age(seconds):
    return "" if seconds is None else f"{seconds / 3600:.1f} h" if seconds >= 5400 else (
        f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s")

  rows = [{**r, "since_s": age(r["since_s"]), "heartbeat_s": age(r["heartbeat_s"]),
           "step": "" if r["step"] is None else r["step"],
           "loss": "" if r["loss"] is None else f"{r['loss']:.4f}"} for r in st.rows]
  print(format_table(rows, ["run", "state", "worker", "since_s", "heartbeat_s", "step", "loss",
                            "error"]))
  done = st.counts.get("finished", 0)
  print(f"{done}/{len(st.rows)} finished; " + ", ".join(f"{n} {k}" for k, n in st.counts.items())
        + f"; {st.workers} live worker(s); " + (
            f"about {age(st.eta_s)} left at the finished runs' FLOP rate" if st.eta_s is not None
            else "time left: unknown until a run finishes"))


def _add_sweep(sub) -> None:
  p = sub.add_parser("sweep", help="train every run of a sweep config (continues where it stopped)",
                     description="Dotted overrides of the sweep config: --config.runs=[...].")
  p.add_argument("--config", required=True,
                 help="configs/sweep.py[:ARG], e.g. configs/sweep.py:scales=80M,r=1+2+4")
  p.add_argument("--root", required=True, help="directory of the sweep's run directories")
  p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                 help="applied to every run's config, e.g. train.steps=200 (repeatable)")
  p.add_argument("--dry-run", action="store_true", help="list the runs and their state only")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.add_argument("--shard", default="0/1", metavar="I/N",
                 help="train only runs I, I+N, I+2N, ... (a static split; without it, workers "
                      "on one root share the runs through claims)")
  p.add_argument("--status", action="store_true",
                 help="a table of the runs (finished, running on which worker since when, "
                      "stale, failed with its error, new) and the time left; trains nothing")
  p.add_argument("--retry-failed", action="store_true",
                 help="retrain runs recorded as failed (failed.json) or with an unreadable record")
  p.add_argument("--repair", action="store_true", help=REPAIR_HELP)
  p.add_argument("--worker", help="this worker's name in claims (default: $LAWSEARCH_WORKER, "
                 "SLURM's job and task, or host:pid)")
  p.add_argument("--heartbeat-s", type=_positive, default=30.0,
                 help="seconds between a worker's heartbeats on its claimed run")
  p.add_argument("--stale-s", type=_positive, default=300.0,
                 help="a claim whose heartbeat is older than this is taken over (claims record "
                      "their worker's own limit, which wins; this one judges older claims and "
                      "is this worker's)")
  p.add_argument("--no-wait", action="store_true",
                 help="exit after one pass instead of staying until no run is left running "
                      "elsewhere (to take over those of workers that die)")
  p.add_argument("--mfu", type=_fraction,
                 help="with --dry-run: the MFU of the time estimate (default: measured, see "
                      "lawsearch.train.estimate)")
  p.add_argument("--aot-topology", action="append", default=[], metavar="TPU",
                 help="with --dry-run: compile every run for this Cloud TPU slice (e.g. v5p-64) "
                      "ahead of time and list which fit its HBM (repeatable; needs the tpu-aot "
                      "extra)")
  p.add_argument("--slurm", action="store_true",
                 help="submit the sweep as a SLURM job array of workers (sbatch; resources from "
                      "the config's slurm block, e.g. --config.slurm.time=4:00:00)")
  p.add_argument("--slurm-script", action="store_true", help="print that sbatch script only")
  p.add_argument("--workers", type=_int_at_least(1),
                 help="array tasks for --slurm (default: the config's slurm.workers)")
  p.add_argument("--slurm-logs", default="slurm-logs",
                 help="shared directory for the tasks' logs and the script (--slurm)")
  p.set_defaults(run=_run_sweep)


# -- eval ----------------------------------------------------------------------------------------
def _run_eval(args) -> None:
  if args.tasks:
    return _run_eval_tasks(args)
  from lawsearch.train import evaluate

  record = evaluate.evaluate(args.workdir, args.config_overrides)
  print(f"{record['workdir']}: step {record['step']}, held-out loss {record['heldout_loss']:.5f} "
        f"+- {record['heldout_loss_se']:.5f} over {record['tokens']:,} tokens")
  print(json.dumps(record))


def _add_eval(sub) -> None:
  p = sub.add_parser("eval", help="held-out loss of a trained run's newest checkpoint, or "
                     "(--tasks) its accuracy on the paper's nine zero-shot tasks",
                     description="Overrides of the run's config: --config.train.eval_batches=64, "
                                 "--config.data.path=other.txt (use '=').")
  p.add_argument("--workdir", required=True, help="the run directory (its config.json)")
  p.add_argument("--tasks", metavar="all|NAME,...", help="score the downstream tasks instead "
                 "(arc_easy, arc_challenge, lambada, hellaswag, openbookqa, piqa, sciq, "
                 "winogrande, coqa) and record them in the run's result.json (imported.json "
                 "for a model brought in with import-hf)")
  p.add_argument("--limit", type=_int_at_least(0), default=0,
                 help="--tasks: the first N items of each task (0: all)")
  p.add_argument("--batch-tokens", type=_int_at_least(1), default=4096,
                 help="--tasks: padded tokens per batch (rows x length; bounds the memory)")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.set_defaults(run=_run_eval)


def _run_eval_tasks(args) -> None:
  """`lawsearch eval --tasks`: the per-task table with the mean, and where the scores went."""
  from lawsearch.downstream import evaluate

  result = evaluate.evaluate(args.workdir, args.tasks, limit=args.limit,
                             overrides=args.config_overrides, batch_tokens=args.batch_tokens,
                             progress=not args.no_progress)
  fmt = lambda v: "" if v is None else f"{v:.4f}"
  rows = [{"task": s.task, "n": s.n, "metric": s.metric or "bits/byte",
           "score": fmt(s.accuracy if s.metric else s.bits_per_byte),
           "se": fmt(getattr(s, f"{s.metric}_se") if s.metric else None),
           "chance": fmt(s.chance), "acc": fmt(s.acc), "acc_norm": fmt(s.acc_norm),
           "perplexity": fmt(s.perplexity), "truncated": s.truncated} for s in result.scores]
  if result.mean is not None:
    rows.append({"task": "mean", "n": "", "metric": "accuracy", "score": fmt(result.mean),
                 "se": "", "chance": fmt(result.mean_chance), "acc": "", "acc_norm": "",
                 "perplexity": "", "truncated": ""})
  print(f"{result.workdir}: step {result.step}, window {result.window} tokens (longer requests "
        f"cut from the left: 'truncated'), tokenizer {result.tokenizer}"
        + (f", first {result.limit} items per task" if result.limit else ""))
  print(format_table(rows, list(rows[0])))
  print(f"recorded in {result.recorded}" if result.recorded else
        "not recorded: the run has no result.json yet (it has not finished)")


# -- export-hf, import-hf -----------------------------------------------------------------------
def _run_export_hf(args) -> None:
  from lawsearch.hf import bridge

  done = bridge.export_hf(args.workdir, args.out, args.step, tokenizer=not args.no_tokenizer)
  print(f"{done.workdir} step {done.step} -> {done.out_dir}: {done.model_type} architecture, "
        f"{done.n_params:,} parameters")
  print("\n".join(f"  {f}" for f in done.files))


def _add_export_hf(sub) -> None:
  p = sub.add_parser("export-hf", help="a run's checkpoint as a Hugging Face model directory "
                     "(safetensors, config.json, tokenizer)")
  p.add_argument("--workdir", required=True, help="the run directory (its config.json)")
  p.add_argument("--out", required=True, help="the directory to write")
  p.add_argument("--step", type=_int_at_least(0), help="checkpoint step (default: the newest)")
  p.add_argument("--no-tokenizer", action="store_true",
                 help="weights and config only (runs on synthetic tokens; tiktoken or "
                      "sentencepiece tokenizers)")
  p.set_defaults(run=_run_export_hf)


def _run_import_hf(args) -> None:
  from lawsearch.hf import bridge

  if os.path.isfile(args.source):  # a directory is Hugging Face's layout, a file GGUF
    return _run_import_gguf(args)
  done = bridge.import_hf(args.source, args.workdir)
  m = done.model
  print(f"{done.source} ({m.model_type}) -> {done.workdir}: {m.spec}, N={m.spec.total_params:,}"
        f" in all, RoPE theta {m.rope_theta:g}{' (llama3 scaling)' if m.rope_scaling else ''}, "
        f"context {m.max_seq_len:,}")
  print(f"tokenizer: {done.tokenizer}" if done.tokenizer else
        "no tokenizer.json or tokenizer.model in the source: pass --config.data.tokenizer=FILE "
        "to `lawsearch eval`")


def _add_import_hf(sub) -> None:
  p = sub.add_parser("import-hf", help="a local Llama/Mistral model directory (config.json, "
                     "safetensors) or a LLaMA GGUF file as a lawsearch run directory")
  p.add_argument("source", help="the model directory (as save_pretrained writes it), or a .gguf "
                 "file (llama.cpp's format; dequantised)")
  p.add_argument("--workdir", required=True, help="the run directory to create")
  p.set_defaults(run=_run_import_hf)


# -- GGUF: import-hf FILE.gguf, export-gguf ------------------------------------------------------
def _run_import_gguf(args) -> None:
  from lawsearch.hf import gguf

  done = gguf.import_gguf(args.source, args.workdir)
  m = done.run.model
  types = ", ".join(f"{n} x{c}" for n, c in sorted(done.tensor_types.items()))
  print(f"{done.run.source} (GGUF, {types}; dequantised to float32) -> {done.run.workdir}: "
        f"{m.spec}, N={m.spec.total_params:,} in all, RoPE theta {m.rope_theta:g}"
        f"{' (llama3 scaling)' if m.rope_scaling else ''}, context {m.max_seq_len:,}")
  print(f"tokenizer: {done.run.tokenizer}" if done.run.tokenizer else
        f"no tokenizer: {done.tokenizer_note}; pass --config.data.tokenizer=FILE to "
        "`lawsearch eval`")


def _run_export_gguf(args) -> None:
  from lawsearch.hf import gguf

  done = gguf.export_gguf(args.workdir, args.out, args.type, args.step,
                          tokenizer=not args.no_tokenizer)
  types = ", ".join(f"{n} x{c}" for n, c in sorted(done.tensor_types.items()))
  print(f"{done.workdir} step {done.step} -> {done.out}: GGUF {done.file_type} ({types}), "
        f"{done.n_params:,} parameters, vocabulary {done.vocabulary!r}")


def _add_export_gguf(sub) -> None:
  p = sub.add_parser("export-gguf", help="a run's checkpoint as a GGUF file (llama.cpp, Ollama)")
  p.add_argument("workdir", help="the run directory (its config.json)")
  p.add_argument("out", help="the .gguf file to write")
  p.add_argument("--type", choices=("f32", "f16", "q8_0"), default="f32",
                 help="matrices as float32, float16 or Q8_0 (norms stay float32)")
  p.add_argument("--step", type=_int_at_least(0), help="checkpoint step (default: the newest)")
  p.add_argument("--no-tokenizer", action="store_true",
                 help="no vocabulary (runs on synthetic tokens, or tokenizers other than a "
                      "byte-level BPE): llama.cpp then runs on token ids")
  p.set_defaults(run=_run_export_gguf)


# -- bench ---------------------------------------------------------------------------------------
def _run_bench(args) -> None:
  import jax

  from lawsearch import cost
  from lawsearch.bench import calibration, throughput
  from lawsearch.model.attention import resolve_impl
  from lawsearch.model.transformer import resolve_dtype

  for flag, path in (("--out", args.out), ("--calibrate", args.calibrate)):
    if path:
      inputs.output_file(path, flag)
  cpu = jax.default_backend() == "cpu"  # small defaults on CPU
  if cpu and args.decode_impl == "pallas":
    raise UsageError("--decode-impl pallas: the Pallas decode kernel runs on GPU or TPU, not on "
                     "this CPU; use --decode-impl xla")
  dtype = resolve_dtype(args.dtype, jax.default_backend())
  attention = resolve_impl(args.attention_impl, jax.default_backend(), dtype)
  hw = cost.hardware(args.hardware) if args.hardware else throughput.detect_hardware()
  results = []
  for name, spec in _specs_from_args(args):
    cfg = throughput.BenchConfig(
        arch=spec, batch_sizes=tuple(args.batch or ([1, 4] if cpu else [1, 8, 32, 64])),
        input_len=args.input_len or (128 if cpu else 4096),
        output_len=args.output_len or (32 if cpu else 1024), trials=args.trials,
        warmup=args.warmup, dtype=dtype,
        decode_impl=args.decode_impl or ("xla" if cpu else "pallas"),
        attention_impl=attention, prefill_batch=args.prefill_batch, seed=args.seed)
    shape = spec.fields()  # so `lawsearch search --measured` can look runs up by shape
    results += [{"name": name, **shape, **r} for r in throughput.run(cfg, hw, log=lambda _: None)]
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=1)
  print(f"generation throughput on {hw.name if hw else jax.devices()[0].device_kind} "
        f"(random weights, exact output length, mean of {args.trials} trials; compile excluded)")
  print(format_table(results, ["name", "batch", "input_len", "output_len", "output_tokens_per_s",
                         "total_tokens_per_s", "requests_per_s", "decode_tokens_per_s",
                         "prefill_s", "decode_s", "compile_s", "mbu",
                         "roofline_output_tokens_per_s", "fraction_of_roofline"]))
  if hw is None:
    print(f"mbu and roofline left blank: {jax.devices()[0].device_kind} is not a chip in "
          "lawsearch.cost.HARDWARE; pass --hardware NAME to compare with one")
  if args.calibrate:
    if hw is None:
      raise UsageError("--calibrate needs a known chip; pass --hardware (see `lawsearch cost`)")
    eff = calibration.calibrate(results)
    calibration.save_efficiency(args.calibrate, hw.name, eff)
    print(f"calibration for {hw.name}: compute {eff.compute:.3f}, memory {eff.memory:.3f} "
          f"-> {args.calibrate}")


def _add_bench(sub) -> None:
  p = sub.add_parser("bench", help="measure generation throughput in the paper's protocol")
  _add_spec_flags(p)
  p.add_argument("--batch", type=_int_at_least(1), nargs="+",
                 help="batch sizes (default 1 8 32 64; CPU: 1 4)")
  p.add_argument("--input-len", type=_int_at_least(1),
                 help="prompt tokens (default 4096; CPU: 128)")
  p.add_argument("--output-len", type=_int_at_least(1),
                 help="generated tokens (default 1024; CPU: 32)")
  p.add_argument("--trials", type=_int_at_least(1), default=5)
  p.add_argument("--warmup", type=_int_at_least(0), default=1)
  p.add_argument("--dtype", choices=DTYPES, default="auto",
                 help="auto: bfloat16 (CPU: float32)")
  p.add_argument("--decode-impl", choices=("xla", "pallas"), help="default pallas (CPU: xla)")
  p.add_argument("--attention-impl", choices=ATTENTION_IMPLS, default="auto",
                 help="prefill attention: auto (grouped on CPU, cudnn on GPU in 16 bits, else "
                      "xla) | xla | cudnn (NVIDIA GPUs, 16-bit dtypes) | grouped")
  p.add_argument("--prefill-batch", type=_int_at_least(1), default=16,
                 help="prompts prefilled together")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--hardware", help="chip in lawsearch.cost (default: detected)")
  p.add_argument("--out", help="write the records as JSON here")
  p.add_argument("--calibrate", metavar="FILE",
                 help="store efficiency factors for `lawsearch cost --calibration FILE`")
  p.set_defaults(run=_run_bench)


# -- fit -----------------------------------------------------------------------------------------
def _read_runs(source: str, allow_pickle: bool = False):
  """runs.read_table(source), noting the runs under a run root that have not finished."""
  from lawsearch import paths, runs
  from lawsearch.rundir import RunDir

  if paths.is_dir(source):
    pending = runs.unfinished(source)
    if pending:
      print(f"note: {len(pending)} run(s) under {source} have no {RunDir.RESULT} yet (still "
            "running, or stopped; the same `lawsearch sweep` or `lawsearch train` command "
            f"finishes them) and are left out: {', '.join(paths.path(p).name for p in pending[:3])}"
            f"{', ...' if len(pending) > 3 else ''}")
  return runs.read_table(source, allow_pickle)


def _l_opt_source(text: str, df):
  """--l-opt text as an L_opt source (`lawsearch.laws.l_opt`); "fit" fits the Chinchilla law on
  the runs once, here, and says what it found."""
  from lawsearch.laws import l_opt

  try:
    source = l_opt.parse(text)
  except UserError as e:
    raise UsageError(f"--l-opt: {e}") from None
  if source == "fit":  # Algorithm 1, step 1: a Chinchilla law fitted on the runs themselves
    source = l_opt.fit_chinchilla(df)
    print(f"L_opt from a Chinchilla fit on the runs: {source!r}")
  return source


def _run_fit(args) -> None:
  from lawsearch import laws

  if args.out:
    inputs.output_file(args.out, "--out", {"--runs": args.runs})
  if args.plots:
    inputs.output_dir(args.plots, "--plots")
  low, high = args.r_range
  if not 0 < low < high:
    raise UsageError(f"--r-range {low:g} {high:g}: give LOW HIGH with 0 < LOW < HIGH")
  df = _read_runs(args.runs, args.allow_pickle)
  l_opt = _l_opt_source(args.l_opt, df)
  r_range = None if args.no_r_filter else (low, high)
  fitted = laws.fit_runs(df, args.form, l_opt=l_opt, r_range=r_range, n_boot=args.bootstrap,
                         level=args.level, seed=args.seed, validate=args.validate)
  law, info = fitted.law, fitted.law.fit_info
  filt = "off" if r_range is None else f"r in [{r_range[0]:g}, {r_range[1]:g}]"
  print(f"{args.form} law on {info.n_points} shapes ({len(df)} runs; r filter {filt}: "
        f"{info.n_excluded} shapes excluded), L_opt {fitted.l_opt}: " + ", ".join(
            f"{scale} {value:.4g}" for scale, value in fitted.l_opt_by_scale.items()))
  print(f"  weighted sum of squares {info.objective:.6g}, MSE {info.mse:.4g}, "
        f"scaled gradient {info.grad_norm:.2g}")
  print("\n".join(fitted.noise_lines()))
  if fitted.no_optimum:
    print(f"  {fitted.no_optimum}")
  rows = fitted.coefficients.to_dict("records")
  if args.bootstrap:
    print(f"\ncoefficients with {args.level:.0%} bootstrap intervals ({args.bootstrap} refits, "
          f"{fitted.n_failed} failed):")
  print(format_table(rows, list(fitted.coefficients.columns)))
  if fitted.optimum is not None:
    (x_star, r_star), o = fitted.optimum, fitted.optimum_interval
    print(f"optimum: d/sqrt(N) = {x_star:.4g}" + (
        f" [{o.loc['x_star', 'low']:.4g}, {o.loc['x_star', 'high']:.4g}]" if o is not None else "")
          + f", r = {r_star:.4g}" + (
        f" [{o.loc['r_star', 'low']:.4g}, {o.loc['r_star', 'high']:.4g}]" if o is not None else ""))
  checked = fitted.assessment
  if checked.validation is not None:
    print("\ncross-scale validation (fit on smaller scales, predict the next):")
    print(format_table(checked.validation.to_dict("records"), list(checked.validation.columns)))
  elif args.validate:
    print(f"\nvalidation skipped: {checked.validation_skipped}")
  print("\nresidual trends: " + (", ".join(checked.flagged) + " (|z| > 3: the form or L_opt "
                                  "misses something)" if checked.flagged else "none flagged"))
  if args.out:
    law.to_json(args.out)
    print(f"wrote {args.out}")
  if args.plots:
    import pandas as pd

    from lawsearch.laws import runs_table
    from lawsearch.report import fit_plots

    if l_opt == "joint":  # the fitted levels, per scale
      labels = pd.Series(runs_table.scale_labels(df))
      df, l_opt = df.assign(l_opt=labels.map(fitted.l_opt_by_scale).to_numpy()), "column"
    written = fit_plots.save(law, df, args.plots, l_opt=l_opt)
    print(f"wrote {', '.join(written)}")


def _run_report(args) -> None:
  from lawsearch.laws import ConditionalLaw
  from lawsearch.report import fit_report

  inputs.output_dir(args.out, "--out")
  df = _read_runs(args.runs)
  law = ConditionalLaw.from_json(args.law)
  path = fit_report.write(law, df, args.out, l_opt=_l_opt_source(args.l_opt, df))
  print(f"wrote {path} and its plots")


def _add_report(sub) -> None:
  p = sub.add_parser("report", help="a Markdown report (and plots) of a fitted law on its runs")
  p.add_argument("--runs", required=True, help="as for `lawsearch fit`")
  p.add_argument("--law", required=True, help="the law JSON `lawsearch fit --out` wrote")
  p.add_argument("--l-opt", default="empirical", help="as for `lawsearch fit` (use the fit's)")
  p.add_argument("--out", required=True, help="directory for report.md and the plots")
  p.set_defaults(run=_run_report)


def _run_fit_accuracy(args) -> None:
  from lawsearch.laws import accuracy

  if args.out:
    inputs.output_file(args.out, "--out", {"--runs": args.runs})
  df = _read_runs(args.runs)
  law = accuracy.fit_table(df, args.form, n_boot=args.bootstrap, level=args.level,
                           seed=args.seed)
  print(f"{args.form} accuracy law: {law.describe()}")
  losses = [law.loss_range[0], sum(law.loss_range) / 2, law.loss_range[1]]
  rows = [{"loss": loss, "predicted mean accuracy": float(law.predict(loss)),
           **(dict(zip((f"{args.level:.0%} low", "high"),
                       (float(b) for b in law.interval(loss)))) if law.boot else {})}
          for loss in losses]
  print(format_table(rows, list(rows[0])))
  if args.out:
    law.to_json(args.out)
    print(f"wrote {args.out}")


def _add_fit_accuracy(sub) -> None:
  p = sub.add_parser("fit-accuracy", help="fit mean downstream accuracy against held-out loss "
                     "on runs scored with `lawsearch eval --tasks all`")
  p.add_argument("--runs", required=True, help="as for `lawsearch fit`")
  p.add_argument("--form", default="linear", choices=("linear", "sigmoid"))
  p.add_argument("--bootstrap", type=_int_at_least(0), default=1000,
                 help="bootstrap refits over runs for intervals (0: none)")
  p.add_argument("--level", type=_fraction, default=0.95, help="interval coverage")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", help="write the law as JSON here (for `lawsearch search "
                 "--accuracy-law`)")
  p.set_defaults(run=_run_fit_accuracy)


def _add_fit(sub) -> None:
  p = sub.add_parser("fit", help="fit the conditional scaling law to a results table")
  p.add_argument("--runs", required=True,
                 help="results table (.csv/.tsv/.json/.jsonl; .pkl with --allow-pickle) or a run "
                      "directory")
  p.add_argument("--allow-pickle", action="store_true",
                 help="read a .pkl runs table (unpickling runs the code a file holds: only your "
                      "own files)")
  p.add_argument("--form", default="multiplicative", choices=("multiplicative", "additive", "joint"))
  p.add_argument("--l-opt", default="empirical",
                 help="empirical (lowest loss per scale) | joint (one level per scale fitted with "
                      "the law) | column | epoch | hoffmann | fit | number")
  p.add_argument("--r-range", type=float, nargs=2, default=(0.5, 5.0), metavar=("LOW", "HIGH"),
                 help="fit only runs with r in [LOW, HIGH] (the paper's filter)")
  p.add_argument("--no-r-filter", action="store_true", help="fit every run")
  p.add_argument("--bootstrap", type=_int_at_least(0), default=1000,
                 help="bootstrap refits (0: none)")
  p.add_argument("--level", type=_fraction, default=0.95, help="interval coverage")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--no-validate", dest="validate", action="store_false",
                 help="skip cross-scale validation")
  p.add_argument("--out", help="write the law as JSON here (for `lawsearch search --law`)")
  p.add_argument("--plots", metavar="DIR",
                 help="write u_curves.png, contours.png and predicted_vs_measured.png here")
  p.set_defaults(run=_run_fit)


# -- entry point ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="lawsearch", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
  for add in (_add_arch, _add_cost, _add_search, _add_demo, _add_data, _add_train, _add_sweep,
              _add_eval, _add_export_hf, _add_import_hf, _add_export_gguf,
              _add_bench, _add_fit, _add_fit_accuracy, _add_report):
    add(sub)
  return parser


def _warning_lines(show):
  """A warnings.showwarning that prints lawsearch's own warnings about the user's input as one
  line each (`lawsearch: warning: ...`) and hands every other warning to `show`."""
  def showwarning(message, category, filename, lineno, file=None, line=None):
    if category is UserWarning and f"{os.sep}lawsearch{os.sep}" in filename:
      print(f"lawsearch: warning: {_one_line(message)}", file=file or sys.stderr)
    else:
      show(message, category, filename, lineno, file, line)
  return showwarning


def main(argv=None) -> int:
  show = warnings.showwarning
  warnings.showwarning = _warning_lines(show)
  try:
    return _main(argv)
  finally:
    warnings.showwarning = show


def _main(argv) -> int:
  compilation_cache.enable()  # a second call's first fit or search need not compile again
  try:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a for a in argv if a.startswith("--config.")]  # train: --config.a.b=v
    args = build_parser().parse_args([a for a in argv if not a.startswith("--config.")])
    # Before any JAX computation starts XLA's threads; the task scorer's batches change shape,
    # and memory kept for reuse would fragment (hostmem).
    if args.command == "eval" and args.tasks:
      hostmem.one_arena()
    else:
      hostmem.keep_freed_memory()
    if overrides and args.command not in CONFIG_COMMANDS:
      raise UsageError(f"{overrides[0]}: `lawsearch {args.command}` takes no config; --config.* "
                       f"overrides apply to {', '.join(CONFIG_COMMANDS)}")
    args.config_overrides = overrides
    args.run(args)
  except UserError as e:
    print(f"lawsearch: error: {_one_line(e)}", file=sys.stderr)
    return 2
  except BrokenPipeError:  # `lawsearch ... | head`: the reader has all it wanted
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
    return 0
  except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
    # Paths come from the user: a missing file or a file where a directory belongs is their slip.
    print(f"lawsearch: error: {e.strerror}: {e.filename}", file=sys.stderr)
    return 2
  except OSError as e:
    if e.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
      raise
    print(f"lawsearch: error: {e.strerror}" + (f": {e.filename}" if e.filename else "") +
          " (free space or choose a writable place, then run the same command again)",
          file=sys.stderr)
    return 2
  return 0


CONFIG_COMMANDS = ("train", "sweep", "eval")
REPAIR_HELP = ("drop the unreadable lines of a run's logs (metrics.jsonl, config_history.jsonl: "
               "a line a killed write cut short) instead of stopping on them")
TRAIN_GROUPS = ("model", "train", "optimizer", "data", "mesh")  # what every train config holds


def _one_line(error: Exception) -> str:
  return " ".join(str(error).split())


if __name__ == "__main__":
  sys.exit(main())
