"""Run directories and their records: the unit of record of every training run.

A run directory is `<root>/<name>-<hash>`, the hash taken over the run's whole config, so the same
config always lands in the same directory (sweeps are idempotent: a directory holding result.json
is a finished run). `result.json` is written atomically (a temporary file, then os.replace): a
reader sees the old record or the new one, never half of one. `collect` gathers every result.json
under one or more roots (local paths, or gs:// and other remote paths through etils.epath) into
the pandas table the fitter reads:

    n_params        N, non-embedding parameters (ArchSpec.non_embedding_params)
    tokens          D, training tokens
    loss            final held-out loss (nats per token)
    d_model, mlp_attn_ratio, and the other ArchSpec fields; run_dir: where the record came from

Imports no JAX, Flax, Orbax or Grain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

RESULT = "result.json"
CONFIG = "config.json"  # written by `lawsearch train` when a run starts
REQUIRED = ("n_params", "tokens", "loss", "d_model", "mlp_attn_ratio")
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _plain(config: Any) -> Any:
  """`config` (ConfigDict, dataclass, dict, list, scalar) as plain JSON-able Python."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  if dataclasses.is_dataclass(config) and not isinstance(config, type):
    config = dataclasses.asdict(config)
  if isinstance(config, Mapping):
    return {str(k): _plain(v) for k, v in config.items()}
  if isinstance(config, (list, tuple)):
    return [_plain(v) for v in config]
  if isinstance(config, (str, bool, int, float)) or config is None:
    return config
  if hasattr(config, "item"):  # numpy scalars
    return config.item()
  raise ValueError(f"config value {config!r} of type {type(config).__name__} is not JSON-able; "
                   "use numbers, strings, lists and dicts in configs")


def config_hash(config: Any) -> str:
  """SHA-256 (hex) of the config's canonical JSON (sorted keys): equal configs, equal hashes."""
  text = json.dumps(_plain(config), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def _path(root: str | os.PathLike):
  """A local Path, or an etils.epath.Path for remote URLs (gs://...)."""
  root = os.fspath(root)
  if _REMOTE.match(root):
    try:
      from etils import epath
    except ImportError as e:
      raise ValueError(f"{root} is a remote path; install etils (pip install 'etils[epath]') "
                       "and the filesystem's client (e.g. gcsfs) to read it") from e
    return epath.Path(root)
  return Path(root).expanduser()


@contextlib.contextmanager
def _filesystem(where):
  """Turns a remote filesystem's missing client (ImportError from etils.epath) into a ValueError."""
  try:
    yield
  except ImportError as e:
    raise ValueError(f"cannot reach {where}: {e} (e.g. pip install gcsfs for gs://)") from e


def run_dir(root: str | os.PathLike, config: Any, name: str = "run"):
  """The run directory of `config` under `root`: root / f"{name}-{hash[:12]}" (not created)."""
  if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
    raise ValueError(f"run name {name!r} must use only letters, digits, '.', '_' and '-'")
  return _path(root) / f"{name}-{config_hash(config)[:12]}"


def write_json_atomic(path, record: Mapping[str, Any]) -> None:
  """Writes `record` as JSON to `path` through a temporary file and os.replace."""
  path = _path(path)
  text = json.dumps(_plain(record), indent=2, sort_keys=True, allow_nan=False) + "\n"
  with _filesystem(path):
    _write(path, text)


def _write(path, text: str) -> None:
  if isinstance(path, Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
  else:  # object stores write whole objects: a single write is already atomic there.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def result_record(spec, *, tokens: float, loss: float, **extra: Any) -> dict[str, Any]:
  """The result record of a run of architecture `spec` (an ArchSpec) trained on `tokens` tokens.

  Holds the fitter's columns (n_params, tokens, loss, d_model, mlp_attn_ratio), every ArchSpec
  field, and `extra` (e.g. steps, wall time). ValueError for a non-finite loss or tokens <= 0.
  """
  if not (isinstance(loss, (int, float)) and math.isfinite(loss)):
    raise ValueError(f"loss={loss!r} is not finite; a diverged run has no result record")
  if not tokens > 0:
    raise ValueError(f"tokens={tokens!r} must be positive")
  return {**dataclasses.asdict(spec), "n_params": spec.non_embedding_params,
          "total_params": spec.total_params, "mlp_attn_ratio": spec.mlp_attn_ratio,
          "d_over_sqrt_n": spec.d_over_sqrt_n, "tokens": tokens, "loss": float(loss), **extra}


def write_result(directory, record: Mapping[str, Any]) -> None:
  """Writes `record` atomically as directory/result.json. It must hold the REQUIRED keys."""
  missing = [k for k in REQUIRED if k not in record]
  if missing:
    raise ValueError(f"result record lacks {missing}; build it with runs.result_record(spec, ...)")
  write_json_atomic(_path(directory) / RESULT, record)


def read_result(directory) -> dict[str, Any] | None:
  """The run's result record, or None when it has none (not finished)."""
  path = _path(directory) / RESULT
  with _filesystem(path):
    return json.loads(path.read_text()) if path.exists() else None


def collect(*roots: str | os.PathLike | Iterable):
  """Every result.json under `roots` (searched recursively) as a pandas DataFrame, one row each.

  Columns: the record keys (REQUIRED always present) plus run_dir. Raises ValueError for a root
  that does not exist, a record that is not valid JSON or lacks REQUIRED keys, or no records.
  """
  import pandas as pd

  if len(roots) == 1 and not isinstance(roots[0], (str, os.PathLike)):
    roots = tuple(roots[0])
  rows = []
  for root in roots:
    with _filesystem(root):
      rows += _records(_path(root))
  if not rows:
    raise ValueError(f"no {RESULT} under {', '.join(map(str, roots))}; train some runs first")
  return pd.DataFrame(rows)


def unfinished(root: str | os.PathLike) -> list[str]:
  """The run directories under `root` (searched recursively) that hold a config.json but no
  result.json yet: runs still going, or stopped before their end."""
  with _filesystem(root):
    path = _path(root)
    if not path.exists():
      return []
    return [str(f.parent) for f in sorted(path.rglob(CONFIG), key=str)
            if not (f.parent / RESULT).exists()]


def _records(path) -> list[dict[str, Any]]:
  """The result records under `path`, each with its run_dir."""
  if not path.exists():
    raise ValueError(f"run root {path} does not exist")
  rows = []
  for f in sorted(path.rglob(RESULT), key=str):
    try:
      record = json.loads(f.read_text())
    except json.JSONDecodeError as e:
      raise ValueError(f"{f} is not valid JSON ({e}); delete it and re-run that run") from e
    missing = [k for k in REQUIRED if k not in record]
    if missing:
      raise ValueError(f"{f} lacks {missing}; it was not written by runs.write_result")
    rows.append({**record, "run_dir": str(f.parent)})
  return rows
