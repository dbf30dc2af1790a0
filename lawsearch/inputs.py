"""What users hand lawsearch, and what lawsearch reads back of its own, checked at the boundary.

Users' files: JSON files against a schema when they are read (`read_json`, `require`), output
paths before any work starts (`output_dir`, `output_file`), arguments of the Python API
(`argument`). Each failure is a `UserError` that names the file, flag or argument, the key and
what was expected.

Files lawsearch itself writes and reads back (a run's config.json, identity.json, result.json,
metrics.jsonl, claims; the data caches' meta.json and token files; laws; search.json) are read by
one reader, `read_file(path, FileKind)`; each kind's schema is in `rundir.FILES` (whose checks
know ArchSpec, a layer above this one) and `rundir.read_file(path, "result")` reads by name. A
damaged file is a `DamagedFile` (a UserError) naming the file, what is wrong and how to recover:
what to remove, or `--repair` where that is safe (a JSON-lines log whose last line a killed write
cut short). Caches record each file's size and checksum (`file_record`) and are checked before
use (`stale_files`). No third-party imports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from typing import Any, Callable, Mapping

from lawsearch import paths
from lawsearch.errors import UserError

# Kinds a schema may ask for, with the check and the words for the error message.
_KINDS = {
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v), "a finite number"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "object": (lambda v: isinstance(v, dict), "a JSON object"),
    "list": (lambda v: isinstance(v, list), "a JSON array"),
}


def _parse(path, raw: bytes) -> Any:
  """The JSON document in `raw` (read from `path`), or ValueError("what is wrong")."""
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start})") from None
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"not JSON ({type(e).__name__}: {e})" if text.strip() else
                     "empty") from None
  except RecursionError:
    raise ValueError("nests deeper than JSON documents of lawsearch do") from None


def _read_bytes(path) -> bytes:
  with paths.reach(path):
    return paths.path(path).read_bytes()


def read_json(path: str | os.PathLike, what: str, top: str = "object", hint: str = "") -> Any:
  """The JSON document in `path` (a `what`, e.g. "law file"), whose top level must be `top`
  ("object" or "list"); `hint` (how to make one) ends the message of a missing file."""
  path = os.fspath(path)
  if paths.is_dir(path):
    raise UserError(f"{what} {path} is a directory; give the file")
  try:
    doc = _parse(path, _read_bytes(path))
  except FileNotFoundError:
    raise UserError(f"{what} {path}: no such file" + (f"; {hint}" if hint else "")) from None
  except ValueError as e:
    raise UserError(f"{what} {path}: {e}") from None
  check, words = _KINDS[top]
  if not check(doc):
    raise UserError(f"{what} {path} holds {_a(doc)}; expected {words}")
  return doc


def schema_problem(doc: Mapping, fields: Mapping[str, str]) -> str:
  """What is wrong with `doc` against `fields` (key -> kind), "" when nothing."""
  for key, kind in fields.items():
    check, words = _KINDS[kind]
    if key not in doc:
      return f"lacks {key!r} ({words})"
    if not check(doc[key]):
      return f"{key!r} must be {words}, got {doc[key]!r}"[:300]
  return ""


def require(doc: Mapping, source: str, fields: Mapping[str, str]) -> None:
  """Every key of `fields` is in `doc` with the kind it names ("number", "integer", "string",
  "object", "list"); `source` says where doc came from, e.g. "law file law.json"."""
  problem = schema_problem(doc, fields)
  if problem:
    raise UserError(f"{source} {problem}" if problem.startswith("lacks") else
                    f"{source}: {problem}")


def positive_int(value, name: str, low: int = 1) -> int:
  """`value` as an int if it is an integer (not a bool, not a float) >= low, else a UserError."""
  if isinstance(value, bool) or not hasattr(value, "__index__") or value < low:
    raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
  return int(value)


def _a(value) -> str:
  return {dict: "a JSON object", list: "a JSON array", str: "a string"}.get(
      type(value), f"the value {value!r}")


# -- arguments of the Python API ---------------------------------------------------------------
def _is_number(v) -> bool:
  return (isinstance(v, (int, float)) or hasattr(v, "dtype") and getattr(v, "ndim", 1) == 0
          and v.dtype.kind in "iuf") and not isinstance(v, bool)


# name -> (check, words) for `argument`
ARGUMENTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "number": (lambda v: _is_number(v) and math.isfinite(v), "a finite number"),
    "positive": (lambda v: _is_number(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "fraction": (lambda v: _is_number(v) and 0 < v < 1, "a number strictly between 0 and 1"),
    "integer": (lambda v: hasattr(v, "__index__") and not isinstance(v, bool), "an integer"),
    "count": (lambda v: hasattr(v, "__index__") and not isinstance(v, bool) and v >= 0,
              "an integer >= 0"),
    "positive integer": (lambda v: hasattr(v, "__index__") and not isinstance(v, bool)
                         and v >= 1, "an integer >= 1"),
    "bool": (lambda v: isinstance(v, bool), "True or False"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "path": (lambda v: isinstance(v, (str, os.PathLike)), "a path (str or os.PathLike)"),
    "callable": (callable, "a callable"),
    "range": (lambda v: isinstance(v, (tuple, list)) and len(v) == 2
              and all(_is_number(x) and math.isfinite(x) for x in v) and 0 < v[0] < v[1],
              "a pair (low, high) with 0 < low < high"),
    "integers": (lambda v: hasattr(v, "__len__") and not isinstance(v, (str, bytes, dict))
                 and len(v) > 0 and all(
        hasattr(x, "__index__") and not isinstance(x, bool) and x >= 1 for x in v),
                 "a non-empty sequence of integers >= 1"),
}


def instance(value, name: str, types, words: str, function: str, optional: bool = False):
  """`value` unchanged when it is an instance of `types` (None too when `optional`), else a
  UserError naming `function`'s argument `name` and what it must be (`words`)."""
  if (optional and value is None) or isinstance(value, types):
    return value
  raise UserError(f"{function}: {name} must be {words}{' or None' if optional else ''}, got "
                  f"{type(value).__name__} {value!r}"[:300])


def argument(value, name: str, kind: str, function: str, optional: bool = False):
  """`value` unchanged when it is of `kind` (a key of ARGUMENTS; None too when `optional`), else
  a UserError naming `function`'s argument `name`, what it must be and what it got."""
  check, words = ARGUMENTS[kind]
  if (optional and value is None) or check(value):
    return value
  got = f"{type(value).__name__} {value!r}"[:120]
  raise UserError(f"{function}: {name} must be {words}{' or None' if optional else ''}, got {got}")


# -- files lawsearch writes and reads back -----------------------------------------------------
class DamagedFile(UserError):
  """A file lawsearch wrote reads back damaged. `problem`: what is wrong; `recover`: what to do."""

  def __init__(self, path, what: str, problem: str, recover: str):
    self.path, self.what, self.problem, self.recover = str(path), what, problem, recover
    super().__init__(f"{path}: no such file (the {what}); {recover}" if problem == MISSING
                     else f"{path}: damaged {what}: {problem}; {recover}")


MISSING = "the file is missing"


@dataclasses.dataclass(frozen=True)
class FileKind:
  """One kind of file lawsearch writes and reads back: `top` is "object", "list" or "lines" (JSON
  lines, an object each); `fields` the keys every document (or line) holds, with their kind;
  `check` further checks (document -> what is wrong, "" when nothing); `recover` what the user
  does about a damaged one; `repairable`: `--repair` may drop unreadable lines (logs)."""

  what: str
  top: str
  fields: Mapping[str, str]
  recover: str
  check: Callable[[Any], str] | None = None
  repairable: bool = False


def read_file(path, spec: FileKind, *, missing_ok: bool = False, repair: bool = False,
              recover: str = "") -> Any:
  """The document in `path`, a file of kind `spec` (rundir.FILES lists lawsearch's), checked
  against its schema: a dict or list, or for "lines" kinds the list of the lines' objects. None
  for a missing file when `missing_ok`. A damaged file is a DamagedFile naming it, what is wrong
  and how to recover (`recover` overrides the kind's advice); with `repair`, a lines file drops
  its unreadable lines (rewritten atomically, one warning) instead."""
  advice = recover or spec.recover
  try:
    raw = _read_bytes(path)
  except FileNotFoundError:
    if missing_ok:
      return None
    raise DamagedFile(path, spec.what, MISSING, advice) from None
  except IsADirectoryError:
    raise DamagedFile(path, spec.what, "a directory where a file belongs", advice) from None
  if spec.top == "lines":
    return _read_lines(path, raw, spec, advice, repair)
  try:
    doc = _parse(path, raw)
  except ValueError as e:
    raise DamagedFile(path, spec.what, str(e), advice) from None
  problem = _document_problem(doc, spec)
  if problem:
    raise DamagedFile(path, spec.what, problem, advice)
  return doc


def _document_problem(doc, spec: FileKind) -> str:
  top = "object" if spec.top == "lines" else spec.top
  check, words = _KINDS[top]
  if not check(doc):
    return f"holds {_a(doc)[:80]}, expected {words}"
  problem = schema_problem(doc, spec.fields) if spec.fields else ""
  if not problem and spec.check is not None:
    problem = spec.check(doc)
  return problem


def _read_lines(path, raw: bytes, spec: FileKind, advice: str, repair: bool) -> list:
  lines = raw.split(b"\n")
  cut = lines[-1] != b""  # no newline at the end: the last write did not finish
  docs, bad = [], []
  for i, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      doc = _parse(path, line)
      problem = _document_problem(doc, spec)
    except ValueError as e:
      problem = str(e)
    if cut and i == len(lines) and not problem:  # it may parse and still be cut: '{"a": 2' + '}'
      problem = "no newline ends it"
    if problem:
      bad.append((i, problem))
    else:
      docs.append(doc)
  if not bad:
    return docs
  last = len(lines) - (not cut)
  if bad == [(last, bad[0][1])] and cut:
    problem = f"its last line ({last}) is cut short, as a killed write leaves it"
  else:
    problem = f"line {bad[0][0]} of {last}: {bad[0][1]}" + (
        f" (and {len(bad) - 1} more line(s))" if len(bad) > 1 else "")
  if not (repair and spec.repairable):
    raise DamagedFile(path, spec.what, problem, advice)
  paths.write_text(path, "".join(json.dumps(d) + "\n" for d in docs))
  warnings.warn(f"{path}: {problem}; --repair dropped {len(bad)} line(s)", UserWarning,
                stacklevel=3)
  return docs


# -- caches: each file's size and checksum --------------------------------------------------------
FULL_DIGEST_BYTES = 1 << 28  # larger files are checksummed on DIGEST_SAMPLES evenly spread MiBs
DIGEST_SAMPLES = 64


def file_digest(path) -> str:
  """"sha256:<hex>" of a local file, or for one over FULL_DIGEST_BYTES "sha256-sampled:<hex>" of
  its size and DIGEST_SAMPLES evenly spaced 1 MiB pieces (a run start must not read 100 GB)."""
  size = os.path.getsize(path)
  h = hashlib.sha256()
  with open(path, "rb") as f:
    if size <= FULL_DIGEST_BYTES:
      for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
      return "sha256:" + h.hexdigest()
    h.update(str(size).encode())
    for i in range(DIGEST_SAMPLES):
      f.seek((size - (1 << 20)) * i // (DIGEST_SAMPLES - 1))
      h.update(f.read(1 << 20))
  return "sha256-sampled:" + h.hexdigest()


def file_record(path) -> dict[str, Any]:
  """{"bytes", "digest"} of a local file, as a cache records its files."""
  return {"bytes": os.path.getsize(path), "digest": file_digest(path)}


def stale_files(root, recorded: Mapping[str, Mapping[str, Any]]) -> str:
  """What differs between the files under directory `root` and `recorded` (name -> file_record
  or {"bytes"} alone): "" when every file is there with its size and, where recorded, its
  checksum."""
  for name, want in recorded.items():
    path = os.path.join(root, name)
    if not os.path.isfile(path):
      return f"{name} is missing"
    size = os.path.getsize(path)
    if size != want.get("bytes", size):
      return f"{name} holds {size:,} bytes, {want['bytes']:,} expected"
    if want.get("digest") and file_digest(path) != want["digest"]:
      return f"{name} does not match its recorded checksum"
  return ""


# -- output paths ---------------------------------------------------------------------------------
def _same(a: str, b: str) -> bool:
  """Whether two paths (local or URLs) name one file."""
  if paths.is_remote(a) or paths.is_remote(b):
    return a.rstrip("/") == b.rstrip("/")
  try:
    return os.path.samefile(a, b)
  except OSError:  # one does not exist yet
    return os.path.abspath(a) == os.path.abspath(b)


def output_dir(path: str | os.PathLike, flag: str) -> str:
  """`path` as a writable directory (created if new; a gs:// URL as it is), or a UserError
  naming `flag`."""
  path = os.fspath(path)
  if paths.is_remote(path):
    paths.path(path)  # an unknown scheme, a missing client or an unreachable store: now
    return path
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"{flag} {path} is a file; give a directory")
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise UserError(f"{flag} {path}: cannot create it ({e.strerror})") from None
  if not os.access(path, os.W_OK):
    raise UserError(f"{flag} {path}: not writable")
  return path


def output_file(path: str | os.PathLike, flag: str, inputs: dict[str, str] | None = None) -> str:
  """`path` as a file that can be written (its directory created if new; a URL as it is), and
  not one of `inputs` (flag -> path: the command's own inputs, which writing would destroy)."""
  path = os.fspath(path)
  for other_flag, other in (inputs or {}).items():
    if other and _same(path, os.fspath(other)):
      raise UserError(f"{flag} {path} is also {other_flag}: writing it would destroy the input; "
                      "give another file")
  if paths.is_remote(path):
    paths.path(path)  # an unknown scheme, a missing client or an unreachable store: now
    return path
  if os.path.isdir(path):
    raise UserError(f"{flag} {path} is a directory; give a file name")
  output_dir(os.path.dirname(path) or ".", flag)
  if os.path.exists(path) and not os.access(path, os.W_OK):
    raise UserError(f"{flag} {path}: not writable")
  return path
