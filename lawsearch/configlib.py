"""ml-collections configs, big_vision style: `get_config(arg)` files and dotted overrides.

    config = load("configs/train.py:preset=tiny,steps=50", ["--config.train.batch_size=16"])
    config = load("train:preset=tiny")   # a packaged config by its short name

`parse_arg("preset=tiny,runlocal", preset="s80m", runlocal=False)` types each value after its
default (a bare name means True); an unknown key is an error. Overrides are typed after the field
they replace and fail on unknown keys (the config is locked).

The packaged configs (lawsearch/configs/NAME.py) are found as files beside this module, not
imported: this module sits below every other part of lawsearch and imports none of it but errors.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import signal
import threading
import traceback
from typing import Mapping, Sequence

import ml_collections

from lawsearch.errors import UserError


def _typed(raw: str, default, key: str):
  if isinstance(default, bool):
    if raw.lower() in ("1", "true", "yes", ""):
      return True
    if raw.lower() in ("0", "false", "no"):
      return False
    raise UserError(f"{key}={raw!r}: expected true or false")
  if isinstance(default, (int, float)) and not isinstance(default, bool):
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      raise UserError(f"{key}={raw!r}: expected a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # True is not 1
      raise UserError(f"{key}={raw!r}: expected a number")
    if isinstance(default, int) and not (isinstance(value, int) or float(value).is_integer()):
      raise UserError(f"{key}={raw!r}: expected an integer")
    return type(default)(value)
  if isinstance(default, str) or default is None:
    return raw
  try:
    return ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    raise UserError(f"{key}={raw!r}: expected a Python literal like {default!r}") from None


def parse_arg(arg: str | None, **spec) -> ml_collections.ConfigDict:
  """Typed fields from "k=v,k2,..." with defaults `spec` (a bare key sets a bool to True)."""
  result = ml_collections.ConfigDict(dict(spec))
  for item in filter(None, (arg or "").split(",")):
    key, _, raw = item.partition("=")
    key = key.strip()
    if key not in spec:
      raise UserError(f"unknown config argument {key!r}; known: {', '.join(spec)}")
    result[key] = True if ("=" not in item and isinstance(spec[key], bool)) else _typed(
        raw.strip(), spec[key], key)
  return result


PACKAGED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def packaged_configs(directory: str = PACKAGED_DIR) -> dict[str, str]:
  """Short name -> path of each config file in `directory` (default lawsearch/configs: "sweep",
  "train"), the names `load` accepts in place of a path."""
  return {name.removesuffix(".py"): os.path.join(directory, name)
          for name in sorted(os.listdir(directory))
          if name.endswith(".py") and not name.startswith("_")}


LOAD_TIMEOUT_S = 60.0  # a config file that runs longer is stopped with a message


@contextlib.contextmanager
def _user_code(path: str):
  """Runs a user's config file: its errors become one UserError naming the file, the line and
  the exception (LAWSEARCH_DEBUG=1 keeps the traceback); sys.exit inside it is an error; it may
  run LOAD_TIMEOUT_S seconds (main thread, POSIX)."""
  def timeout(*_):
    raise TimeoutError(f"still running after {LOAD_TIMEOUT_S:g} s")
  alarm = (threading.current_thread() is threading.main_thread()
           and hasattr(signal, "SIGALRM"))
  previous = signal.signal(signal.SIGALRM, timeout) if alarm else None
  if alarm:
    signal.setitimer(signal.ITIMER_REAL, LOAD_TIMEOUT_S)
  try:
    yield
  except UserError as e:
    raise UserError(f"config file {path}: {e}") from None
  except SystemExit as e:
    raise UserError(f"config file {path} called sys.exit({e.code!r}); a config returns its "
                    "settings from get_config(arg) and exits nothing") from None
  except Exception as e:  # pylint: disable=broad-except  (anything the user's code raises)
    if os.environ.get("LAWSEARCH_DEBUG"):
      raise
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if os.path.abspath(f.filename) == os.path.abspath(path)]
    where = f", line {frames[-1].lineno}" if frames else ""
    raise UserError(f"config file {path}{where}: {type(e).__name__}: {e} (LAWSEARCH_DEBUG=1 "
                    "shows the traceback)") from None
  finally:
    if alarm:
      signal.setitimer(signal.ITIMER_REAL, 0)
      signal.signal(signal.SIGALRM, previous)


def load(spec: str, overrides: list[str] = (),
         packaged: Mapping[str, str] | None = None,
         groups: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """Run `get_config(arg)` of the file in "path.py[:arg]" and apply "--config.a.b=v" overrides.

  The path may instead be a short name from `packaged` (default: `packaged_configs()`).
  get_config must return an ml_collections.ConfigDict holding every one of `groups`.
  """
  path, _, arg = spec.partition(":")
  packaged = packaged_configs() if packaged is None else packaged
  path = packaged.get(path, path)
  if not os.path.isfile(path):
    raise UserError(f"config file {path!r} not found (give --config=path/to/file.py[:arg], or "
                    f"{' or '.join(packaged)}[:arg] for the package's own)")
  if not path.endswith(".py"):
    raise UserError(f"config file {path} is not a Python file; a config is a .py file with "
                    "get_config(arg) (see configs/train.py)")
  module_spec = importlib.util.spec_from_file_location("_lawsearch_config", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    with _user_code(path):
      module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise UserError(f"config file {path}: {e.msg} at line {e.lineno}") from None
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise UserError(f"config file {path} has no get_config(arg) function (see configs/train.py)")
  with _user_code(path):
    config = get_config(arg or None)
  if not isinstance(config, ml_collections.ConfigDict):
    raise UserError(f"config file {path}: get_config returned {type(config).__name__}; return an "
                    "ml_collections.ConfigDict (see configs/train.py)")
  missing = [g for g in groups if g not in config]
  if missing:
    raise UserError(f"config file {path}: its config lacks {missing}; a train config has "
                    f"{', '.join(groups)} (see configs/train.py)")
  return locked(config, overrides)


def locked(config: ml_collections.ConfigDict, overrides=()) -> ml_collections.ConfigDict:
  """`config` locked (no new keys), then the "--config.a.b=v" overrides applied."""
  config.lock()
  for item in overrides:
    apply_override(config, item)
  return config


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
  """Apply one "--config.a.b=v" (or "a.b=v") to a locked config, typed after the current value."""
  key, eq, raw = item.removeprefix("--").removeprefix("config.").partition("=")
  if not eq:
    raise UserError(f"override {item!r} must look like --config.a.b=value")
  parent, *path = config, *key.split(".")
  for part in path[:-1]:
    if part not in parent:
      raise UserError(f"unknown config key {key!r} (no {part!r})")
    parent = parent[part]
  leaf = path[-1]
  if not isinstance(parent, ml_collections.ConfigDict) or leaf not in parent:
    raise UserError(f"unknown config key {key!r}")
  if isinstance(parent[leaf], ml_collections.ConfigDict):
    raise UserError(f"config key {key!r} is a group of settings; override one of them: "
                    + ", ".join(f"{key}.{k}" for k in parent[leaf]))
  try:
    parent[leaf] = _typed(raw, parent[leaf], key)
  except TypeError as e:  # ml_collections refuses a value of another type
    raise UserError(f"{key}={raw!r}: {e}") from None
