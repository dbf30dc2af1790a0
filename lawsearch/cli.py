"""The `lawsearch` command. Each subcommand is added by one `_add_<name>` function whose handler
imports its module lazily, so `lawsearch --help` and the light subcommands start fast.

Bad input exits with status 2 and a one-line message (never a traceback).
"""

from __future__ import annotations

import argparse
import json
import sys


class UsageError(Exception):
  """Bad input from the user; reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors instead of a usage dump."""

  def error(self, message):
    raise UsageError(message)


# -- shared argument helpers ---------------------------------------------------------------------
def _add_spec_flags(p: argparse.ArgumentParser) -> None:
  """Flags describing one architecture: a preset, or explicit fields (which override the preset)."""
  p.add_argument("--preset", action="append", default=[],
                 help="named architecture (repeatable); see `lawsearch arch --list`")
  for field in ("n-layers", "d-model", "n-heads", "n-kv-heads", "head-dim", "ffn-dim",
                "vocab-size"):
    p.add_argument(f"--{field}", type=int)
  p.add_argument("--untied", action="store_true", help="separate output head (not tied)")


def _specs_from_args(args) -> list[tuple[str, "object"]]:
  """(name, ArchSpec) pairs from --preset flags and/or explicit shape flags."""
  from lawsearch import arch

  fields = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab_size")
  given = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
  if args.untied:
    given["tie_embeddings"] = False
  specs = [(name, arch.preset(name).replace(**given)) for name in args.preset]
  if not specs:
    missing = [f for f in fields if f not in given]
    if missing:
      raise UsageError("give --preset NAME or every shape flag; missing: "
                       + ", ".join("--" + m.replace("_", "-") for m in missing))
    specs = [("custom", arch.ArchSpec(**given))]
  return specs


def _table(rows: list[dict], columns: list[str]) -> str:
  """A plain fixed-width table of `rows` (dicts) over `columns`."""

  def fmt(v):
    if isinstance(v, float):
      return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.4e}"
    return str(v)

  cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
  widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
  lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
  lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
  return "\n".join(lines)


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
  print(_table(rows, ["name", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim",
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

  hw = cost.hardware(args.hardware)
  rows = []
  for name, spec in _specs_from_args(args):
    for batch in args.batch:
      t = cost.roofline_throughput(spec, hw, batch, args.input_len, args.output_len)
      rows.append({"name": name, "batch": batch, "fits": t.fits, "max_batch": t.max_batch,
                   "memory_GiB": t.memory_bytes / 2**30, "prefill_s": t.prefill_s,
                   "decode_s": t.decode_s, "output_tok_s": t.output_tokens_per_s,
                   "total_tok_s": t.total_tokens_per_s})
  if args.json:
    print(json.dumps(rows, indent=2))
    return
  print(f"roofline on {hw.name}: {args.input_len} input, {args.output_len} output tokens")
  print(_table(rows, ["name", "batch", "fits", "max_batch", "memory_GiB", "prefill_s",
                      "decode_s", "output_tok_s", "total_tok_s"]))


def _add_cost(sub) -> None:
  p = sub.add_parser("cost", help="roofline generation throughput across batch sizes")
  _add_spec_flags(p)
  p.add_argument("--hardware", default="a100-40gb")
  p.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32, 64, 128, 256])
  p.add_argument("--input-len", type=int, default=4096)
  p.add_argument("--output-len", type=int, default=1024)
  p.add_argument("--json", action="store_true")
  p.set_defaults(run=_run_cost)


# -- demo ----------------------------------------------------------------------------------------
def _run_demo(args) -> None:
  from lawsearch import demo

  demo.run(args.hardware, args.batch)


def _add_demo(sub) -> None:
  p = sub.add_parser("demo", help="the main job on the embedded defaults")
  p.add_argument("--hardware", default="a100-40gb")
  p.add_argument("--batch", type=int, default=64)
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
  q.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary (tiny preset: 4096)")
  q.add_argument("--token-dtype", choices=("uint16", "uint32"), help="raw .bin token input only")
  q.add_argument("--heldout-fraction", type=float, default=0.01)
  q.add_argument("--cache-dir", help="default: $LAWSEARCH_CACHE or ~/.cache/lawsearch")
  q.set_defaults(run=_run_data)


# -- entry point ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="lawsearch", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
  for add in (_add_arch, _add_cost, _add_demo, _add_data):
    add(sub)
  return parser


def main(argv=None) -> int:
  try:
    args = build_parser().parse_args(argv)
    args.run(args)
  except (UsageError, ValueError, FileNotFoundError) as e:
    print(f"lawsearch: error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
