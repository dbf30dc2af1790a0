"""`lawsearch data`, `train`, `sweep` and `eval`: tokens in, trained and evaluated runs out."""

from __future__ import annotations

import sys

from lawsearch.commands.args import (Parser, UsageError, fraction, held_out_fraction, int_at_least,
                                     positive)

REPAIR_HELP = ("drop the unreadable lines of a run's logs (metrics.jsonl, config_history.jsonl: "
               "a line a killed write cut short) instead of stopping on them")
TRAIN_GROUPS = ("model", "train", "optimizer", "data", "mesh")  # what every train config holds


# -- data ----------------------------------------------------------------------------------------
def _run_data(args) -> None:
  from lawsearch.data import tokens

  spec = tokens.DataSpec(source=args.source, path=args.path or "", tokenizer=args.tokenizer,
                         vocab_size=args.vocab_size, token_dtype=args.token_dtype or "",
                         heldout_fraction=args.heldout_fraction, cache_dir=args.cache_dir or "")
  print(tokens.build(spec).summary())


def _add_data(sub) -> None:
  p = sub.add_parser("data", help="build the training corpus and its token files")
  actions = p.add_subparsers(dest="action", required=True, parser_class=Parser)
  q = actions.add_parser("prepare", help="fetch, clean, tokenize (cached: a 2nd call does nothing)")
  q.add_argument("--source", default="default",
                 choices=("default", "text", "tokens", "arrayrecord"))
  q.add_argument("--path", help="input of --source text|tokens|arrayrecord: file, dir or glob")
  q.add_argument("--tokenizer", default="bpe",
                 help="bpe (train one here), bytes, or a tiktoken/sentencepiece/tokenizers file")
  q.add_argument("--vocab-size", type=int_at_least(2), default=4096,
                 help="BPE vocabulary (tiny preset: 4096)")
  q.add_argument("--token-dtype", choices=("uint16", "uint32"), help="raw .bin token input only")
  q.add_argument("--heldout-fraction", type=held_out_fraction, default=0.01)
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
  print(record.summary())


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
    print(sweep.status(config, args.root, args.override, args.stale_s).summary())
    return
  if args.slurm or args.slurm_script:
    return _slurm_sweep(args, config)
  if args.aot_topology and not args.dry_run:
    raise UsageError("--aot-topology checks the runs against a slice without training: add "
                     "--dry-run")
  result = sweep.run(config, args.root, overrides=args.override, dry_run=args.dry_run,
                     progress=not args.no_progress, shard=sweep.parse_shard(args.shard),
                     retry_failed=args.retry_failed, worker=args.worker,
                     heartbeat_s=args.heartbeat_s, stale_s=args.stale_s, wait=not args.no_wait,
                     repair=args.repair, seed_groups=args.seed_groups)
  if args.dry_run:
    return _sweep_estimate(result.planned, args)
  if result.records:
    print(result.summary())
  if result.failed:
    print(result.failure_summary(), file=sys.stderr)
    sys.exit(1)


def _sweep_estimate(planned, args) -> None:
  """`lawsearch sweep --dry-run`: the runs' cost, and with --aot-topology whether each fits."""
  from lawsearch.train import aot, estimate

  print(estimate.for_configs([p.config for p in planned],
                             **({"mfu": args.mfu, "mfu_source": "--mfu"} if args.mfu else {}))
        .summary())
  if args.aot_topology and not aot.compile_runs(
      {p.name: p.config for p in planned}, args.aot_topology,
      log=lambda line: print(line, flush=True)):
    sys.exit(1)


def _slurm_sweep(args, config) -> None:
  """`lawsearch sweep --slurm`: the sweep as a job array of workers (or its script, printed)."""
  from lawsearch.train import slurm

  print(slurm.sweep_job(config, config=args.config, root=args.root, log_dir=args.slurm_logs,
                        heartbeat_s=args.heartbeat_s, stale_s=args.stale_s, workers=args.workers,
                        overrides=args.override, config_overrides=args.config_overrides,
                        retry_failed=args.retry_failed, repair=args.repair,
                        seed_groups=args.seed_groups, script_only=args.slurm_script).summary())


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
  p.add_argument("--seed-groups", action="store_true",
                 help="train the seeds of one shape as one program (one device only): each "
                      "member stays an ordinary run in its own directory")
  p.add_argument("--worker", help="this worker's name in claims (default: $LAWSEARCH_WORKER, "
                 "SLURM's job and task, or host:pid)")
  p.add_argument("--heartbeat-s", type=positive, default=30.0,
                 help="seconds between a worker's heartbeats on its claimed run")
  p.add_argument("--stale-s", type=positive, default=300.0,
                 help="a claim whose heartbeat is older than this is taken over (claims record "
                      "their worker's own limit, which wins; this one judges older claims and "
                      "is this worker's)")
  p.add_argument("--no-wait", action="store_true",
                 help="exit after one pass instead of staying until no run is left running "
                      "elsewhere (to take over those of workers that die)")
  p.add_argument("--mfu", type=fraction,
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
  p.add_argument("--workers", type=int_at_least(1),
                 help="array tasks for --slurm (default: the config's slurm.workers)")
  p.add_argument("--slurm-logs", default="slurm-logs",
                 help="shared directory for the tasks' logs and the script (--slurm)")
  p.set_defaults(run=_run_sweep)


# -- eval ----------------------------------------------------------------------------------------
def _run_eval(args) -> None:
  if args.tasks:
    return _run_eval_tasks(args)
  from lawsearch.train import evaluate

  print(evaluate.evaluate(args.workdir, args.config_overrides).summary())


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
  p.add_argument("--limit", type=int_at_least(0), default=0,
                 help="--tasks: the first N items of each task (0: all)")
  p.add_argument("--batch-tokens", type=int_at_least(1), default=4096,
                 help="--tasks: padded tokens per batch (rows x length; bounds the memory)")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.set_defaults(run=_run_eval)


def _run_eval_tasks(args) -> None:
  """`lawsearch eval --tasks`: the per-task table with the mean, and where the scores went."""
  from lawsearch.downstream import evaluate

  print(evaluate.evaluate(args.workdir, args.tasks, limit=args.limit,
                          overrides=args.config_overrides, batch_tokens=args.batch_tokens,
                          progress=not args.no_progress).summary())


def add_parsers(sub) -> None:
  """This module's subcommands, in `lawsearch --help` order."""
  for add in (_add_data, _add_train, _add_sweep, _add_eval):
    add(sub)
