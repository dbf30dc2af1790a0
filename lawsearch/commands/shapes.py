"""`lawsearch arch`, `cost`, `search` and `demo`: architectures and what they cost to serve."""

from __future__ import annotations

import json
import os

from lawsearch import inputs
from lawsearch.commands.args import (add_spec_flags, fraction, int_at_least, ints, lambdas,
                                     positive, specs_from_args)
from lawsearch.table import format_table


# -- arch ----------------------------------------------------------------------------------------
def _run_arch(args) -> None:
  from lawsearch import arch

  if args.list:
    print("\n".join(arch.PRESETS))
    return
  rows = [{"name": name, **spec.describe()} for name, spec in specs_from_args(args)]
  if args.json:
    print(json.dumps(rows, indent=2))
    return
  print(format_table(rows, ["name", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim",
                      "ffn_dim", "gqa", "non_embedding_params", "total_params", "mlp_attn_ratio",
                      "d_over_sqrt_n"]))


def _add_arch(sub) -> None:
  p = sub.add_parser("arch", help="show an architecture's shape and parameter arithmetic")
  add_spec_flags(p)
  p.add_argument("--list", action="store_true", help="list the named presets")
  p.add_argument("--json", action="store_true")
  p.set_defaults(run=_run_arch)


# -- cost ----------------------------------------------------------------------------------------
def _run_cost(args) -> None:
  from lawsearch import cost

  if args.breakdown:
    return _run_cost_breakdown(args)
  hw = cost.hardware(args.hardware)
  efficiency = cost.Efficiency()
  if args.calibration:
    from lawsearch.bench import calibration

    efficiency = calibration.load_efficiency(args.calibration, hw.name)
  table = cost.throughput_table(specs_from_args(args), hw, args.batch or [1, 8, 32, 64, 128, 256],
                                args.input_len, args.output_len, efficiency)
  print(json.dumps(table.rows, indent=2) if args.json else table.summary())


def _run_cost_breakdown(args) -> None:
  """`lawsearch cost --breakdown`: each component's share of a decode step, and the claims."""
  from lawsearch import cost, regimes

  hw = cost.hardware(args.hardware)
  if args.plots:
    inputs.output_dir(args.plots, "--plots")
  specs = dict(specs_from_args(args)) if (args.preset or args.d_model) else regimes.family()
  table = regimes.breakdown_table(specs, hw, args.context, args.batch or regimes.BATCHES)
  print(table.to_json(orient="records", indent=1) if args.json else
        regimes.breakdown_summary(table, hw.name))
  if args.plots and not args.json:
    from lawsearch.report import regimes as plots

    for what in ("time", "flops"):
      print("wrote " + plots.breakdown_plot(table, os.path.join(args.plots, f"{what}.png"), what))


def _add_cost(sub) -> None:
  p = sub.add_parser("cost", help="roofline generation throughput across batch sizes, or "
                     "(--breakdown) where a decode step's cost goes")
  add_spec_flags(p)
  p.add_argument("--hardware", default="a100-40gb")
  p.add_argument("--batch", type=int_at_least(1), nargs="+",
                 help="batch sizes (default 1 8 32 64 128 256; --breakdown: 1 64 256)")
  p.add_argument("--breakdown", action="store_true",
                 help="share of decode FLOPs, bytes and time per component at --context, for the "
                      "presets given or the LLaMA family from 135M to 405B")
  p.add_argument("--context", type=int_at_least(1), nargs="+", default=[4096, 32768, 131072],
                 help="KV lengths of --breakdown")
  p.add_argument("--plots", metavar="DIR", help="--breakdown: write time.png and flops.png here")
  p.add_argument("--input-len", type=int_at_least(1), default=4096)
  p.add_argument("--output-len", type=int_at_least(1), default=1024)
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
  from lawsearch import search, search_stage

  accuracy = None
  if args.accuracy_law:  # read before the search: a bad file is refused before any work
    from lawsearch.laws.accuracy import AccuracyLaw

    accuracy = AccuracyLaw.from_json(args.accuracy_law)
  measure = (search.MeasuredEfficiency.from_file(args.measured, args.batch) if args.measured else
             search.RooflineEfficiency(args.hardware, args.batch, args.input_len, args.output_len))
  done = search_stage.run(search_stage.SearchRequest(
      _load_law(args.law), args.params, args.tokens, args.layers, args.head_dim, args.out,
      loss_target=args.target, baseline=args.baseline, efficiency=measure, l_opt=args.l_opt,
      tolerance=args.tolerance, max_gqa=args.max_gqa, vocab_size=args.vocab_size,
      pareto_points=args.pareto_points, accuracy=accuracy, lambdas=args.lambdas or (),
      cost_unit=args.cost_unit, power_w=args.power_w, price_per_hour=args.price_per_hour,
      attention=tuple(args.attention.split(",")), kv_lora_ranks=args.kv_lora_ranks,
      q_lora_rank=args.q_lora_rank, mla_loss_factor=args.mla_loss_factor,
      mlp=tuple(args.mlp.split(",")), experts=args.experts, granularities=args.granularities))
  print(done.summary())


def _add_search(sub) -> None:
  p = sub.add_parser("search", help="Algorithm 1: the most efficient architecture meeting a loss")
  p.add_argument("--law", default="paper-80m-297m",
                 help="paper-80m-297m | paper-1b-only | a law JSON file from `lawsearch fit`")
  p.add_argument("--params", type=positive, required=True, help="non-embedding parameter budget N")
  p.add_argument("--tokens", type=positive, required=True, help="training tokens D")
  p.add_argument("--layers", type=int_at_least(1), required=True)
  p.add_argument("--head-dim", type=int_at_least(1), required=True)
  p.add_argument("--baseline", help="preset whose predicted loss is the target")
  p.add_argument("--target", type=positive, help="loss target (absolute with --l-opt)")
  p.add_argument("--l-opt", type=positive, help="L_opt(N, D) at the budget; without it losses "
                 "are relative")
  p.add_argument("--hardware", default="a100-40gb")
  p.add_argument("--batch", type=int_at_least(1), default=64)
  p.add_argument("--input-len", type=int_at_least(1), default=4096)
  p.add_argument("--output-len", type=int_at_least(1), default=1024)
  p.add_argument("--measured", help="JSON of measured throughput (`lawsearch bench --out`); "
                 "the records at --batch are used")
  p.add_argument("--tolerance", type=fraction, default=0.01)
  p.add_argument("--max-gqa", type=int_at_least(1), default=16)
  p.add_argument("--vocab-size", type=int_at_least(1), default=128256)
  p.add_argument("--pareto-points", type=int_at_least(1), default=5)
  p.add_argument("--lambda", dest="lambdas", type=lambdas, metavar="L1,L2,...",
                 help="also minimise loss + lambda * cost / (baseline's cost) for each lambda")
  p.add_argument("--cost-unit", choices=("s/token", "J/token", "$/Mtoken"), default="s/token",
                 help="the cost --lambda reports (all normalise to the same picks)")
  p.add_argument("--power-w", type=positive, help="serving system's watts for J/token (default: "
                 "the chip's datasheet maximum)")
  p.add_argument("--price-per-hour", type=positive, help="serving system's dollars per hour for "
                 "$/Mtoken")
  p.add_argument("--accuracy-law", metavar="FILE", help="from `lawsearch fit-accuracy`: print "
                 "each pick's predicted mean accuracy (needs absolute losses: --l-opt)")
  p.add_argument("--attention", choices=("gqa", "gqa,mla"), default="gqa",
                 help="gqa,mla: also the best multi-head latent attention shape at the target, "
                 "beside the best GQA one (attention.png, attention.json)")
  p.add_argument("--kv-lora-ranks", type=ints, metavar="R1,R2,...",
                 help="MLA latent ranks to enumerate (default: 2, 4 and 8 x head_dim)")
  p.add_argument("--q-lora-rank", type=int_at_least(0), default=0,
                 help="MLA query latent rank (0: no query compression)")
  p.add_argument("--mla-loss-factor", type=positive, help="an MLA shape's loss = the law's "
                 "prediction x this (fitted from MLA and GQA runs; without it MLA is assumed "
                 "loss-neutral)")
  p.add_argument("--mlp", choices=("dense", "dense,moe"), default="dense",
                 help="dense,moe: also the best mixture of experts at the target, beside the best "
                 "dense shape, and both throughputs against batch (moe.json, moe_throughput.png)")
  p.add_argument("--experts", type=ints, metavar="E1,E2,...", default=[4, 8, 16],
                 help="MoE expert counts to enumerate")
  p.add_argument("--granularities", type=ints, metavar="G1,G2,...", default=[1, 2, 4],
                 help="MoE granularities: G experts of width ffn_dim / G per token (top-k = G)")
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
  p.add_argument("--batch", type=int_at_least(1), default=64)
  p.add_argument("--synthetic", action="store_true",
                 help="fit a synthetic sweep drawn from the paper's law and search at 1B, "
                      "instead of the CPU replication's real runs")
  p.add_argument("--results", help="a CPU replication's directory with runs.csv (and "
                 "hardware.json) (default: the copy shipped with the package, "
                 "lawsearch/data/cpu_replication)")
  p.set_defaults(run=_run_demo)


def add_parsers(sub) -> None:
  """This module's subcommands, in `lawsearch --help` order."""
  for add in (_add_arch, _add_cost, _add_search, _add_demo):
    add(sub)
