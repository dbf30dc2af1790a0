"""lawsearch: the LLM architecture that meets a loss target at the lowest serving cost.

The command line is a table of subcommands: each module of lawsearch/commands adds its own
(`add_parsers`), and each handler parses, calls its stage's entry point and prints the result's
summary. Handlers import their stage lazily, so `lawsearch --help` and the light subcommands
start fast:

    commands/shapes.py   arch, cost, search, demo
    commands/runs.py     data, train, sweep, eval
    commands/models.py   export-hf, import-hf, export-gguf, bench
    commands/laws.py     fit, fit-accuracy, report
    commands/args.py     what several of them parse

Bad input (a `lawsearch.errors.UserError`, or a path that does not exist or is the wrong kind)
exits with status 2 and a one-line message; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import warnings

from lawsearch import compilation_cache, hostmem
from lawsearch.commands import laws, models, runs, shapes
from lawsearch.commands.args import Parser, UsageError
from lawsearch.errors import UserError


# -- entry point ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
  parser = Parser(prog="lawsearch", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
  for group in (shapes, runs, models, laws):
    group.add_parsers(sub)
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


def _one_line(error: Exception) -> str:
  return " ".join(str(error).split())


if __name__ == "__main__":
  sys.exit(main())
