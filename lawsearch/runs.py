"""Run records: each finished run's result.json, and the runs table gathered from them.

A run directory (lawsearch.rundir) is named by its run's identity, so the same run always lands in
the same directory (sweeps are idempotent: a directory holding result.json is a finished run).
Roots are local paths or gs:// (and other) URLs: every file goes through lawsearch.paths.
`result.json` is written atomically: a reader sees the old record or the new one, never half of
one. `collect` gathers every result.json under one or more roots into the pandas table the fitter
reads:

    n_params        N, non-embedding parameters (ArchSpec.non_embedding_params)
    n_active        the non-embedding parameters a token uses (a mixture of experts counts its
                    top-k experts; n_params for a dense MLP)
    tokens          D, training tokens
    loss            final held-out loss (nats per token)
    d_model, mlp_attn_ratio, and the other ArchSpec fields; run_dir: where the record came from

Imports no JAX, Flax, Orbax or Grain.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Iterable, Mapping

from lawsearch import inputs, paths, rundir
from lawsearch.errors import UserError
from lawsearch.rundir import RunDir, write_json_atomic

REQUIRED = ("n_params", "tokens", "loss", "d_model", "mlp_attn_ratio")


def result_record(spec, *, tokens: float, loss: float, **extra: Any) -> dict[str, Any]:
  """The result record of a run of architecture `spec` (an ArchSpec) trained on `tokens` tokens.

  Holds the fitter's columns (n_params, tokens, loss, d_model, mlp_attn_ratio), every ArchSpec
  field, and `extra` (e.g. steps, wall time). ValueError for a non-finite loss or tokens <= 0.
  """
  if not (isinstance(loss, (int, float)) and math.isfinite(loss)):
    raise UserError(f"loss={loss!r} is not finite; a diverged run has no result record")
  if not tokens > 0:
    raise UserError(f"tokens={tokens!r} must be positive")
  return {**spec.fields(), "n_params": spec.non_embedding_params,
          "n_active": spec.active_non_embedding_params, "total_params": spec.total_params,
          "mlp_attn_ratio": spec.mlp_attn_ratio,
          "d_over_sqrt_n": spec.d_over_sqrt_n, "tokens": tokens, "loss": float(loss), **extra}


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """A finished run, typed: its directory, architecture and measured numbers (result.json).

  loss: the held-out loss (nats/token) and loss_se its block-bootstrap standard error; tokens:
  training tokens; train_loss: the last logged train loss; tokens_per_s: the median training
  throughput of the process; config_history: the allowed config changes on resume
  (runs.config_changes). `record` is the whole result.json, every key kept."""

  run_dir: str
  spec: Any  # arch.ArchSpec
  tokens: float
  loss: float
  loss_se: float | None
  train_loss: float | None
  steps: int | None
  seed: int | None
  tokens_per_s: float | None
  config_history: tuple
  record: Mapping[str, Any]

  @classmethod
  def from_dict(cls, record: Mapping[str, Any], run_dir) -> "RunRecord":
    from lawsearch import arch  # pylint: disable=import-outside-toplevel

    return cls(str(run_dir), arch.from_fields(record), float(record["tokens"]),
               float(record["loss"]), record.get("loss_se"), record.get("train_loss"),
               record.get("steps"), record.get("seed"), record.get("tokens_per_s"),
               tuple(record.get("config_history", ())), dict(record))

  @classmethod
  def read(cls, run_dir) -> "RunRecord | None":
    """The run's record, or None when it has not finished; an inputs.DamagedFile when it is
    damaged or lacks the architecture a run's record holds."""
    record = read_result(run_dir)
    if record is None:
      return None
    try:
      return cls.from_dict(record, run_dir)
    except (TypeError, ValueError) as e:
      spec = rundir.FILES["result"]
      raise inputs.DamagedFile(RunDir(run_dir).result, spec.what,
                               f"no architecture ({e})"[:300], spec.recover) from None

  @property
  def n_params(self) -> int:
    return self.spec.non_embedding_params

  def to_dict(self) -> dict[str, Any]:
    """result.json as written."""
    return dict(self.record)

  def summary(self) -> str:
    """What `lawsearch train` prints: the record as one JSON line, for scripts to read."""
    return json.dumps(self.to_dict())


def write_result(directory, record: Mapping[str, Any]) -> None:
  """Writes `record` atomically as directory/result.json. It must hold the REQUIRED keys."""
  missing = [k for k in REQUIRED if k not in record]
  if missing:
    raise UserError(f"result record lacks {missing}; build it with runs.result_record(spec, ...)")
  write_json_atomic(RunDir(directory).result, record)


def read_result(directory) -> dict[str, Any] | None:
  """The run's result record, or None when it has none (not finished); a damaged one is an
  `inputs.DamagedFile` (a UserError) that says what is wrong and how to recover."""
  return rundir.read_file(RunDir(directory).result, "result", missing_ok=True)


def collect(*roots: str | os.PathLike | Iterable):
  """Every result.json under `roots` (searched recursively) as a pandas DataFrame, one row each.

  Columns: the record keys (REQUIRED always present) plus run_dir. Raises ValueError for a root
  that does not exist, a record that is not valid JSON or lacks REQUIRED keys, or no records.
  """
  import pandas as pd

  if len(roots) == 1 and not isinstance(roots[0], (str, os.PathLike)):
    inputs.instance(roots[0], "roots", (list, tuple, set), "paths, or one list of paths",
                    "runs.collect")
    roots = tuple(roots[0])
  for root in roots:
    inputs.argument(root, "root", "path", "runs.collect")
  rows = []
  for root in roots:
    with paths.reach(root):
      rows += _records(paths.path(root))
  if not rows:
    raise UserError(f"no {RunDir.RESULT} under {', '.join(map(str, roots))}; train some runs first")
  return pd.DataFrame(rows)


def read_table(source, allow_pickle: bool = False):
  """The runs table of `source`, checked (check_table): a run root (every finished run's
  result.json under it, see collect) or a table file (.csv, .tsv, .json, .jsonl; .pkl only with
  `allow_pickle`: unpickling runs whatever code the file holds), local or a URL."""
  import io  # pylint: disable=g-import-not-at-top

  import pandas as pd  # pylint: disable=g-import-not-at-top

  inputs.argument(source, "source", "path", "runs.read_table")
  inputs.argument(allow_pickle, "allow_pickle", "bool", "runs.read_table")
  where = f"--runs {source}"
  if paths.is_dir(source):
    return check_table(collect(source), where)
  readers = {".csv": pd.read_csv, ".tsv": lambda f: pd.read_csv(f, sep="\t"),
             # JSON through json itself: pandas' reader turns true into 1.0 without a word
             ".json": lambda f: pd.DataFrame(json.load(f)),
             ".jsonl": lambda f: pd.DataFrame([json.loads(l) for l in f if l.strip()])}
  suffix = paths.path(source).suffix.lower()
  if suffix in (".pkl", ".pickle"):
    if not allow_pickle:
      raise UserError(f"{where}: reading a pickle runs whatever code it holds; give the table as "
                      ".csv, or pass --allow-pickle if you made the file yourself")
    readers[suffix] = pd.read_pickle
  if suffix not in readers:
    raise UserError(f"{where}: not a run directory nor a table file ({', '.join(readers)})")
  if not paths.exists(source):
    raise UserError(f"{where}: no such file")
  with paths.reach(source):
    data = paths.path(source).read_bytes()
  try:
    df = readers[suffix](io.BytesIO(data))
  except (ValueError, RecursionError, pd.errors.ParserError) as e:  # empty, malformed, too deep
    raise UserError(f"{where}: cannot read it as a {suffix} table "
                    f"({' '.join(str(e).split())[:300]})") from None
  return check_table(df, where)


# Plausible ranges of the fitter's columns (a language model's parameters, tokens, loss in nats).
_RANGES = {"n_params": (1.0, 1e15), "tokens": (1.0, 1e17), "loss": (0.0, 100.0),
           "d_model": (1.0, 1e7), "mlp_attn_ratio": (0.0, 1e4)}


def check_table(df, source: str):
  """`df` (a runs table) with its REQUIRED columns as float64, or a UserError from `source` naming
  the missing column, the non-numeric or boolean cell, the NaN/infinite one, a d_model that is
  not a whole number, or a value outside its plausible range (_RANGES). Rows that repeat another
  row exactly are dropped with a warning (a table concatenated twice, a copied record)."""
  import warnings  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top

  if len(df) == 0:
    raise UserError(f"{source}: the table has no rows")
  missing = [c for c in REQUIRED if c not in df.columns]
  if missing:
    raise UserError(f"{source}: missing column(s) {missing}; the table has {list(df.columns)}")
  df = df.copy()
  for column in REQUIRED:
    if df[column].dtype == bool or df[column].map(lambda v: isinstance(v, bool)).any():
      raise UserError(f"{source}: column {column!r} holds true/false values; expected numbers")
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
      row = int(np.flatnonzero(bad.to_numpy())[0])
      raise UserError(f"{source}: column {column!r} holds {df[column].iloc[row]!r} at row {row}; "
                      "expected numbers")
    bad = ~np.isfinite(values.to_numpy(np.float64))
    if bad.any():
      raise UserError(f"{source}: column {column!r} has {int(bad.sum())} missing or infinite "
                      f"value(s) (first at row {int(np.flatnonzero(bad)[0])}); fix or drop them")
    low, high = _RANGES[column]
    bad = ~((values > low) & (values < high)).to_numpy()
    if bad.any():
      row = int(np.flatnonzero(bad)[0])
      raise UserError(f"{source}: column {column!r} holds {float(values.iloc[row]):g} at row "
                      f"{row}, outside ({low:g}, {high:g}); fix or drop that row")
    df[column] = values.astype(np.float64)
  if not (df["d_model"] == df["d_model"].round()).all():
    row = int(np.flatnonzero((df["d_model"] != df["d_model"].round()).to_numpy())[0])
    raise UserError(f"{source}: d_model {float(df['d_model'].iloc[row]):g} at row {row} is not a "
                    "whole number")
  copies = df.drop(columns=[c for c in ("run_dir",) if c in df.columns]).astype(str).duplicated()
  if copies.any():
    warnings.warn(f"{source}: {int(copies.sum())} row(s) repeat another row exactly (a copied "
                  "record or a table joined twice); each is counted once", UserWarning,
                  stacklevel=2)
    df = df[~copies.to_numpy()].reset_index(drop=True)
  return df


def unfinished(root: str | os.PathLike) -> list[str]:
  """The run directories under `root` (searched recursively) that hold a config.json but no
  result.json yet: runs still going, or stopped before their end (imported models are none)."""
  with paths.reach(root):
    path = paths.path(root)
    if not path.exists():
      return []
    return [str(f.parent) for f in paths.find(path, RunDir.CONFIG)
            if not RunDir(f.parent).result.exists() and not RunDir(f.parent).imported.exists()]


def _records(path) -> list[dict[str, Any]]:
  """The result records under `path`, each with its run_dir."""
  if not path.exists():
    raise UserError(f"run root {path} does not exist")
  rows = []
  for f in paths.find(path, RunDir.RESULT):
    record = rundir.read_file(f, "result")
    if "n_active" not in record:  # written before records held it
      record["n_active"] = (RunRecord.from_dict(record, f.parent).spec.active_non_embedding_params
                            if record.get("mlp") == "moe" else record["n_params"])
    rows.append({**record, "run_dir": str(f.parent)})
  return rows
