"""JAX's persistent compilation cache, on for lawsearch: a new process's first fit or search
loads its compiled programs from disk instead of compiling them again (a Colab runtime restart, a
second CLI call).

    import lawsearch
    lawsearch.enable_compilation_cache()          # before or after importing jax

The cache lives under the lawsearch cache ($LAWSEARCH_CACHE or ~/.cache/lawsearch) in
jax_compilation_cache/, or where $LAWSEARCH_COMPILATION_CACHE points; "off" turns it off. It is
safe to delete at any time (programs are compiled again). JAX keys entries by program, backend
and version. No third-party imports.
"""

from __future__ import annotations

import os
import sys

ENV = "LAWSEARCH_COMPILATION_CACHE"


def directory() -> str | None:
  """Where the cache lives, or None when $LAWSEARCH_COMPILATION_CACHE is "off"."""
  chosen = os.environ.get(ENV, "")
  if chosen.lower() == "off":
    return None
  root = os.environ.get("LAWSEARCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                            "lawsearch")
  return chosen or os.path.join(root, "jax_compilation_cache")


def enable(path: str | None = None) -> str | None:
  """Turn the cache on at `path` (default `directory()`); returns the directory, or None when off.

  Every program is cached (no minimum compile time or size). Before jax is imported this sets
  the JAX_* environment variables jax reads at import (so the CLI need not import jax to start);
  after, it updates jax.config.
  """
  path = path or directory()
  if path is None:
    return None
  os.makedirs(path, exist_ok=True)
  options = {"jax_compilation_cache_dir": path,
             "jax_persistent_cache_min_compile_time_secs": 0,
             "jax_persistent_cache_min_entry_size_bytes": 0}
  if "jax" in sys.modules:
    import jax  # pylint: disable=g-import-not-at-top

    for name, value in options.items():
      jax.config.update(name, value)
  else:
    for name, value in options.items():
      os.environ.setdefault(name.upper(), str(value))
  return path
