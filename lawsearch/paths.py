"""The one path layer: every file of a run, a sweep, a fit or a report goes through it, so a local
directory and a Cloud Storage bucket (gs://, or any URL etils.epath knows) behave the same.

    p = paths.path("gs://bucket/run") / "result.json"   # an etils.epath.Path (local: pathlib.Path)
    paths.write_text(p, text)                           # atomic: readers see old or new, not half
    paths.append_text(p.parent / "metrics.jsonl", line)

Object stores have no rename and no append. A single object write is already atomic there, so
`write_text` writes once; `append_text` rewrites the object with the line added (logs are small:
a line per logged step). Local files are written through a temporary file and os.replace, and
appended in place. Remote paths need etils and the store's client (gcsfs for gs://); a missing
client is a UserError that says what to install. For tests and emulators, gcsfs reads
STORAGE_EMULATOR_HOST, and orbax's tensorstore TENSORSTORE_GCS_HTTP_URL.

Imports no JAX.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

from lawsearch.errors import UserError

_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://")
SCHEMES = ("gs", "s3", "az")  # the object stores etils.epath serves (through fsspec)


# A full disk, a read-only filesystem, an exhausted quota: the place, not the input, is at fault.
DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)


_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")  # how tensorstore (orbax) reports one


def disk_error(error: BaseException, where=None) -> OSError | None:
  """The OSError of a full or read-only disk (DISK_ERRNOS) that `error` is or was raised from
  (its __cause__ / __context__ chain), else None. A library's own error that reports one (orbax's
  tensorstore: "... No space left on device [os_error_code='28']") becomes that OSError, naming
  `where`."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
      return error
    code = _OS_ERROR_CODE.search(str(error))
    if code and int(code.group(1)) in DISK_ERRNOS:
      number = int(code.group(1))
      return OSError(number, os.strerror(number), None if where is None else os.fspath(where))
    error = error.__cause__ or error.__context__
  return None


def is_remote(p: str | os.PathLike) -> bool:
  """Whether `p` is a URL (gs://bucket/...) rather than a local path."""
  return bool(_REMOTE.match(os.fspath(p)))


def path(p: str | os.PathLike):
  """A pathlib.Path for a local path (~ expanded), an etils.epath.Path for a URL."""
  if isinstance(p, Path):
    return p
  if is_remote(p):
    scheme = os.fspath(p).split("://")[0]
    if scheme not in SCHEMES:
      raise UserError(f"{p}: the URL scheme {scheme}:// is not one lawsearch reads or writes; use a "
                      f"local path or one of {', '.join(s + '://' for s in SCHEMES)}")
    try:
      from etils import epath  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise UserError(f"{p} is a remote path; install etils (pip install 'etils[epath]') and the "
                      "store's client (pip install gcsfs for gs://) to use it") from e
    _fresh_listings(scheme)
    if scheme == "gs":
      preflight(os.fspath(p))
    return epath.Path(os.fspath(p))
  return Path(os.fspath(p)).expanduser()


PREFLIGHT_TIMEOUT_S = 10.0  # one attempt to open a connection to the store, before any request
REQUEST_TIMEOUT_S = 120.0  # each request to the store (gcsfs's requests_timeout)
_REACHED: set[str] = set()


def gcs_endpoint() -> str:
  """The Cloud Storage endpoint gcsfs talks to: $STORAGE_EMULATOR_HOST (an emulator), else
  https://storage.googleapis.com (of $GOOGLE_CLOUD_UNIVERSE_DOMAIN)."""
  emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
  if emulator not in ("", "default"):
    return emulator if re.match(r"^https?://", emulator) else f"http://{emulator}"
  return "https://storage." + os.environ.get("GOOGLE_CLOUD_UNIVERSE_DOMAIN", "googleapis.com")


def preflight(url: str) -> None:
  """Fails fast, with one line, when the store behind `url` (gs://) cannot be reached: one
  attempt to connect to its endpoint (or to the HTTPS proxy the environment names) within
  PREFLIGHT_TIMEOUT_S, once per endpoint and process, instead of the client's minute of retries."""
  import socket  # pylint: disable=import-outside-toplevel
  import urllib.parse  # pylint: disable=import-outside-toplevel

  endpoint = gcs_endpoint()
  proxy = endpoint.startswith("https://") and next(
      (os.environ[k] for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
       if os.environ.get(k)), "")
  target = proxy or endpoint
  if target in _REACHED:
    return
  try:
    import gcsfs  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:  # no client: `reach` says what to install, and no request leaves
    return
  parts = urllib.parse.urlsplit(target if "://" in target else f"http://{target}")
  port = parts.port or (443 if parts.scheme == "https" else 80)
  try:
    socket.create_connection((parts.hostname, port), timeout=PREFLIGHT_TIMEOUT_S).close()
  except OSError as e:
    reason = "no answer within {:g} s".format(PREFLIGHT_TIMEOUT_S) if isinstance(
        e, TimeoutError) else (e.strerror or str(e) or type(e).__name__)
    raise UserError(f"cannot reach {url}: {'the proxy ' if proxy else ''}{target} ({reason}); "
                    "check the network, the endpoint (STORAGE_EMULATOR_HOST for an emulator) "
                    "and the bucket name, then run the command again") from None
  _REACHED.add(target)


def _fresh_listings(scheme: str) -> None:
  """No cached directory listings for `scheme`'s fsspec filesystem (its default caches them, and
  an object's cached size truncates reads once another process rewrites it: a resumed run's
  metrics, a worker's records)."""
  try:
    import fsspec.config  # pylint: disable=import-outside-toplevel
  except ImportError:  # path() reports the missing client when the store is first used
    return
  conf = fsspec.config.conf.setdefault(scheme, {})
  conf.setdefault("use_listings_cache", False)
  if scheme == "gs":
    conf.setdefault("requests_timeout", REQUEST_TIMEOUT_S)
    import logging  # pylint: disable=import-outside-toplevel

    quiet = logging.getLogger("gcsfs")  # a line per request about a bucket-type probe it skips
    if quiet.level == logging.NOTSET:
      quiet.setLevel(logging.ERROR)


def absolute(p: str | os.PathLike) -> str:
  """`p` as an absolute path string (a URL unchanged): what orbax and tensorstore take."""
  return os.fspath(p) if is_remote(p) else os.path.abspath(os.path.expanduser(os.fspath(p)))


@contextlib.contextmanager
def reach(where):
  """Turns a remote store's missing client (an ImportError inside etils.epath) into a UserError."""
  try:
    yield
  except ImportError as e:
    raise UserError(f"cannot reach {where}: {e} (pip install gcsfs for gs://)") from e


def is_dir(p) -> bool:
  with reach(p):
    return path(p).is_dir()


def exists(p) -> bool:
  with reach(p):
    return path(p).exists()


def make_dirs(p) -> None:
  """Creates directory `p` and its parents (a no-op where it exists; object stores have none)."""
  with reach(p):
    path(p).mkdir(parents=True, exist_ok=True)


def read_text(p) -> str:
  with reach(p):
    return path(p).read_text()


def write_bytes(p, data: bytes) -> None:
  """Writes `data` to `p` atomically, creating its directory."""
  p = path(p)
  with reach(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(p, Path):
      tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
      try:
        tmp.write_bytes(data)
        os.replace(tmp, p)
      finally:  # a full or read-only disk leaves no half-written temporary file behind
        tmp.unlink(missing_ok=True)
    else:  # object stores write whole objects: one write is already atomic
      p.write_bytes(data)


def write_text(p, text: str) -> None:
  """Writes `text` (UTF-8) to `p` atomically, creating its directory."""
  write_bytes(p, text.encode())


def append_text(p, text: str) -> None:
  """Appends `text` to `p` (created when missing)."""
  p = path(p)
  with reach(p):
    if isinstance(p, Path):
      p.parent.mkdir(parents=True, exist_ok=True)
      with open(p, "a") as f:
        f.write(text)
    else:
      write_text(p, (p.read_text() if p.exists() else "") + text)


def find(root, name: str) -> list:
  """Every file called `name` under directory `root`, at any depth, sorted (one listing per
  directory: object stores refuse recursive globs)."""
  root = path(root)
  with reach(root):
    if isinstance(root, Path):
      return sorted(root.rglob(name), key=str)
    scheme = os.fspath(root).split("://")[0]
    # etils' walk drops the scheme from the directories it yields (gs://b/r -> b/r)
    return sorted((path(f"{scheme}://{str(top).split('://')[-1]}") / name
                   for top, _, files in root.walk() if name in files), key=str)


def create(p, text: str) -> bool:
  """Creates `p` holding `text` only if it does not exist yet: True if this call created it,
  False if it was there. Atomic among any number of processes and hosts: locally a hard link of
  a complete temporary file (no reader ever sees it half-written; works on NFS), in an object
  store a write with the precondition "no generation yet" (gs: ifGenerationMatch=0)."""
  p = path(p)
  with reach(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(p, Path):
      tmp = p.with_name(f".{p.name}.new{os.getpid()}")
      try:
        tmp.write_text(text)
        os.link(tmp, p)
        return True
      except FileExistsError:
        return False
      finally:  # also after a full disk cut the write short
        tmp.unlink(missing_ok=True)
    import fsspec  # pylint: disable=import-outside-toplevel

    fs, key = fsspec.core.url_to_fs(os.fspath(p))
    try:
      fs.pipe_file(key, text.encode(), mode="create")
      return True
    except FileExistsError:
      return False


def mtime(p) -> float:
  """The modification time of file `p` (seconds since the epoch, by the clock of the filesystem or
  store that holds it)."""
  p = path(p)
  with reach(p):
    stat = p.stat()
  return float(getattr(stat, "st_mtime", None) or getattr(stat, "mtime"))


def remove(p) -> None:
  """Deletes file `p` (no error when it is already gone)."""
  p = path(p)
  with reach(p):
    try:
      p.unlink()
    except FileNotFoundError:
      pass
