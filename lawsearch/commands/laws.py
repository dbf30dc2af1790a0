"""`lawsearch fit`, `fit-accuracy` and `report`: laws fitted on runs tables."""

from __future__ import annotations

from lawsearch import inputs
from lawsearch.commands.args import UsageError, fraction, int_at_least
from lawsearch.errors import UserError


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
  fitted = laws.fit_runs(df, args.form, l_opt=l_opt,
                         r_range=None if args.no_r_filter else (low, high),
                         n_boot=args.bootstrap, level=args.level, seed=args.seed,
                         validate=args.validate)
  print(fitted.summary())
  if args.out:
    fitted.law.to_json(args.out)
    print(f"wrote {args.out}")
  if args.plots:
    from lawsearch.report import fit_plots

    print(f"wrote {', '.join(fit_plots.save_fit(fitted, df, args.plots, l_opt))}")


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
  print(law.summary())
  if args.out:
    law.to_json(args.out)
    print(f"wrote {args.out}")


def _add_fit_accuracy(sub) -> None:
  p = sub.add_parser("fit-accuracy", help="fit mean downstream accuracy against held-out loss "
                     "on runs scored with `lawsearch eval --tasks all`")
  p.add_argument("--runs", required=True, help="as for `lawsearch fit`")
  p.add_argument("--form", default="linear", choices=("linear", "sigmoid"))
  p.add_argument("--bootstrap", type=int_at_least(0), default=1000,
                 help="bootstrap refits over runs for intervals (0: none)")
  p.add_argument("--level", type=fraction, default=0.95, help="interval coverage")
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
  p.add_argument("--form", default="multiplicative", help="a MoE form (moe-*) prices sparsity "
                 "at fixed active parameters: fit it on dense and MoE runs; decaying: a shape "
                 "effect that shrinks as N^-gamma (when the lack-of-fit test fails across scales)",
                 choices=("multiplicative", "additive", "joint", "decaying", "moe-power",
                          "moe-granularity", "moe-leverage", "moe-saturating"))
  p.add_argument("--l-opt", default="empirical",
                 help="empirical (lowest loss per scale) | joint (one level per scale fitted with "
                      "the law) | column | epoch | hoffmann | fit | number")
  p.add_argument("--r-range", type=float, nargs=2, default=(0.5, 5.0), metavar=("LOW", "HIGH"),
                 help="fit only runs with r in [LOW, HIGH] (the paper's filter)")
  p.add_argument("--no-r-filter", action="store_true", help="fit every run")
  p.add_argument("--bootstrap", type=int_at_least(0), default=1000,
                 help="bootstrap refits (0: none)")
  p.add_argument("--level", type=fraction, default=0.95, help="interval coverage")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--no-validate", dest="validate", action="store_false",
                 help="skip cross-scale validation")
  p.add_argument("--out", help="write the law as JSON here (for `lawsearch search --law`)")
  p.add_argument("--plots", metavar="DIR",
                 help="write u_curves.png, contours.png and predicted_vs_measured.png here")
  p.set_defaults(run=_run_fit)


def add_parsers(sub) -> None:
  """This module's subcommands, in `lawsearch --help` order."""
  for add in (_add_fit, _add_fit_accuracy, _add_report):
    add(sub)
