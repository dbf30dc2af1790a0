"""What users hand lawsearch, checked at the boundary: JSON files against a schema when they are
read, output paths before any work starts. Each failure is a `UserError` that names the file (or
the flag), the key and what was expected. No third-party imports."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

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


def read_json(path: str | os.PathLike, what: str, top: str = "object", hint: str = "") -> Any:
  """The JSON document in `path` (a `what`, e.g. "law file"), whose top level must be `top`
  ("object" or "list"); `hint` (how to make one) ends the message of a missing file."""
  path = os.fspath(path)
  if paths.is_dir(path):
    raise UserError(f"{what} {path} is a directory; give the file")
  try:
    doc = json.loads(paths.read_text(path))
  except FileNotFoundError:
    raise UserError(f"{what} {path}: no such file" + (f"; {hint}" if hint else "")) from None
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise UserError(f"{what} {path} is not JSON ({e})") from None
  except RecursionError:
    raise UserError(f"{what} {path} nests deeper than JSON documents of lawsearch do; it is not "
                    f"a {what}") from None
  check, words = _KINDS[top]
  if not check(doc):
    raise UserError(f"{what} {path} holds {_a(doc)}; expected {words}")
  return doc


def require(doc: Mapping, source: str, fields: Mapping[str, str]) -> None:
  """Every key of `fields` is in `doc` with the kind it names ("number", "integer", "string",
  "object", "list"); `source` says where doc came from, e.g. "law file law.json"."""
  for key, kind in fields.items():
    check, words = _KINDS[kind]
    if key not in doc:
      raise UserError(f"{source} lacks {key!r} ({words})")
    if not check(doc[key]):
      raise UserError(f"{source}: {key!r} must be {words}, got {doc[key]!r}")


def positive_int(value, name: str, low: int = 1) -> int:
  """`value` as an int if it is an integer (not a bool, not a float) >= low, else a UserError."""
  if isinstance(value, bool) or not hasattr(value, "__index__") or value < low:
    raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
  return int(value)


def _a(value) -> str:
  return {dict: "a JSON object", list: "a JSON array", str: "a string"}.get(
      type(value), f"the value {value!r}")


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
    return path
  if os.path.isdir(path):
    raise UserError(f"{flag} {path} is a directory; give a file name")
  output_dir(os.path.dirname(path) or ".", flag)
  if os.path.exists(path) and not os.access(path, os.W_OK):
    raise UserError(f"{flag} {path}: not writable")
  return path
