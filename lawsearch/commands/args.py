"""What several subcommands parse: argparse types, the one-line usage error, architecture flags."""

from __future__ import annotations

import argparse
import math
import os

from lawsearch.errors import UserError

# attention.IMPLS and transformer.DTYPES plus "auto", repeated here so `lawsearch --help` need not
# import jax (tests keep the lists equal).
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "grouped")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class UsageError(UserError):
  """A bad command line; reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
  """argparse with one-line errors instead of a usage dump."""

  def error(self, message):
    raise UsageError(message)


# -- shared argument helpers ---------------------------------------------------------------------
def int_at_least(low: int):
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


def positive(text: str) -> float:
  """argparse type: a finite number > 0."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
  if not (math.isfinite(value) and value > 0):
    raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
  return value


def held_out_fraction(text: str) -> float:
  """argparse type: a number in [0, 1) (0: no held-out split)."""
  try:
    if float(text) == 0:
      return 0.0
  except ValueError:
    pass  # fraction says what is wrong
  return fraction(text)


def fraction(text: str) -> float:
  """argparse type: a number strictly between 0 and 1."""
  value = positive(text)
  if value >= 1:
    raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
  return value


def add_spec_flags(p: argparse.ArgumentParser) -> None:
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


def run_spec(workdir: str):
  """The ArchSpec of a run directory, from its config.json."""
  from lawsearch import arch, paths
  from lawsearch.rundir import RunDir

  run = RunDir(workdir)
  if not paths.exists(run.config):
    raise UserError(f"--workdir {workdir}: no {RunDir.CONFIG}; give a `lawsearch train` or "
                    "import-hf run")
  return arch.from_fields(run.read_json(run.config)["model"]["arch"])


def specs_from_args(args) -> list[tuple[str, "object"]]:
  """(name, ArchSpec) pairs from --preset and --workdir flags and/or explicit shape flags."""
  from lawsearch import arch

  fields = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab_size")
  given = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
  if args.untied:
    given["tie_embeddings"] = False
  specs = [(name, arch.preset(name).replace(**given)) for name in args.preset]
  specs += [(os.path.basename(os.path.normpath(w)), run_spec(w).replace(**given))
            for w in args.workdir]
  if not specs:
    missing = [f for f in fields if f not in given]
    if missing:
      raise UsageError("give --preset NAME or every shape flag; missing: "
                       + ", ".join("--" + m.replace("_", "-") for m in missing))
    specs = [("custom", arch.ArchSpec(**given))]
  return specs


def ints(text: str) -> list[int]:
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
  if not values or any(v < 1 for v in values):
    raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
  return values


def lambdas(text: str) -> list[float]:
  try:
    values = [float(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"--lambda takes comma-separated numbers, got {text!r}")
  if not values or any(not v >= 0 for v in values):
    raise argparse.ArgumentTypeError(f"--lambda values must be >= 0, got {text!r}")
  return values
