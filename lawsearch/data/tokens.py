"""A data config -> flat token files: `train.bin`, `heldout.bin` (uint16 or uint32) and `meta.json`.

Sources (`DataSpec.source`):
  "default"      the corpus `lawsearch data prepare` builds (see corpus.py), tokenized here
  "text"         the user's UTF-8 text: one file, a directory (every *.txt under it) or a glob;
                 each file is one document
  "arrayrecord"  ArrayRecord shards (a file or glob) whose records are UTF-8 text documents
  "tokens"       token ids already made: a directory holding meta.json (this module's format, used
                 in place) or one flat .bin file of `token_dtype` ids below `vocab_size`

Text is tokenized as documents joined by the end-of-text id. The stream is cut into blocks of
`BLOCK_TOKENS`; blocks 0, k, 2k, ... (k = round(1/heldout_fraction)) go to the held-out split, so
both splits sample the whole corpus and any corpus has a held-out split. Results are cached under
`<cache_dir>/tokens/<key>/`, key = a hash of the spec and the input files (name, size, mtime).
`meta.json` is written last, atomically: a present meta.json means a complete set, and a second call
only checks it: meta.json against its schema, each file's size and checksum against what meta.json
records (`files`); a damaged cache is rebuilt with a warning, a damaged token directory of the
user's is an error. meta.json records where each source (a text directory's top-level folder, or a
file) lies in the token stream (`source_spans`), so a sample of the held-out split can name the
sources it covers (`TokenSet.heldout_sources`).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from lawsearch import inputs, paths, rundir
from lawsearch.data import corpus
from lawsearch.data import tokenizer as tokenizer_lib
from lawsearch.errors import UserError

SOURCES = ("default", "text", "tokens", "arrayrecord")
SPLITS = ("train", "heldout")
BLOCK_TOKENS = 4096
FORMAT_VERSION = 2  # 2: meta.json records source_spans
_PARAGRAPH = re.compile(r"(?<=\n\n)")


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Where tokens come from; the fields of a config's `data` section that this module reads.

  source: "default" | "text" | "tokens" | "arrayrecord" (see module doc).
  path: input for "text", "tokens", "arrayrecord"; ignored for "default".
  tokenizer: "bpe" (trained here on the corpus), "bytes", or a tokenizer file path.
  vocab_size: BPE vocabulary size to train (at most; a small text may give fewer); for a raw
    .bin token file, its vocabulary size.
  token_dtype: a raw .bin token file's dtype, "uint16" or "uint32".
  heldout_fraction: share of BLOCK_TOKENS-token blocks held out, in [0, 0.5].
  cache_dir: "" -> $LAWSEARCH_CACHE, else ~/.cache/lawsearch.
  """

  source: str = "default"
  path: str = ""
  tokenizer: str = "bpe"
  vocab_size: int = 4096
  token_dtype: str = ""
  heldout_fraction: float = 0.01
  cache_dir: str = ""

  def __post_init__(self):
    if self.source not in SOURCES:
      raise UserError(f"data.source={self.source!r} is unknown; use one of {SOURCES}")
    if self.source != "default" and not self.path:
      raise UserError(f"data.source={self.source!r} needs data.path (a file, directory or glob)")
    if not 0 <= self.heldout_fraction <= 0.5:
      raise UserError(f"data.heldout_fraction={self.heldout_fraction} must be in [0, 0.5]")
    if self.token_dtype not in ("", "uint16", "uint32"):
      raise UserError(f"data.token_dtype={self.token_dtype!r} must be 'uint16' or 'uint32'")
    if self.tokenizer == "bpe":
      tokenizer_lib.check_bpe_vocab_size(self.vocab_size)

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any]) -> "DataSpec":
    """From a ConfigDict or dict; keys this class does not know (pipeline knobs) are ignored."""
    get = cfg.get
    return cls(**{f.name: get(f.name, f.default) for f in dataclasses.fields(cls)
                  if get(f.name, None) is not None})

  @property
  def cache(self) -> Path:
    return Path(self.cache_dir or os.environ.get("LAWSEARCH_CACHE")
                or Path.home() / ".cache" / "lawsearch").expanduser()


@dataclasses.dataclass(frozen=True)
class TokenSet:
  """A directory of token files and its meta (vocab_size, eos_id, dtype, n_tokens per split...)."""

  root: Path
  meta: Mapping[str, Any]

  @property
  def vocab_size(self) -> int:
    return int(self.meta["vocab_size"])

  def n_tokens(self, split: str) -> int:
    return int(self.meta["n_tokens"][split])

  def path(self, split: str) -> Path:
    if split not in SPLITS:
      raise UserError(f"split={split!r} is unknown; use one of {SPLITS}")
    return self.root / f"{split}.bin"

  def array(self, split: str) -> np.ndarray:
    """The split's token ids, memory-mapped: [n_tokens] of meta['dtype']."""
    n = self.n_tokens(split)
    if n == 0:
      return np.zeros((0,), self.meta["dtype"])
    return np.memmap(self.path(split), dtype=self.meta["dtype"], mode="r", shape=(n,))

  @property
  def block_tokens(self) -> int:
    """Tokens per block of the stream (the unit the splits are cut in)."""
    return int(self.meta.get("block_tokens", BLOCK_TOKENS))

  def heldout_stream_position(self, positions: np.ndarray) -> np.ndarray:
    """Token positions within the held-out split -> positions in the whole token stream (int64).

    The stream is cut into `block_tokens` blocks and block b is held out when b % period == 0
    (period = round(1 / heldout_fraction)), so held-out block j is stream block j * period.
    """
    block = self.block_tokens
    fraction = float(self.meta.get("heldout_fraction", 0.0))
    period = round(1 / fraction) if fraction > 0 else 0
    j, offset = np.divmod(np.asarray(positions, np.int64), block)
    return j * period * block + offset

  def heldout_sources(self, positions: np.ndarray) -> dict[str, int]:
    """{source: how many of `positions` (token positions in the held-out split) fall in it}, from
    meta's source_spans; {} for token sets without them (raw token files, format 1)."""
    spans = self.meta.get("source_spans") or []
    stream = self.heldout_stream_position(positions)
    counts: dict[str, int] = {}
    for source, start, end in spans:
      hit = int(np.count_nonzero((stream >= start) & (stream < end)))
      if hit:
        counts[source] = counts.get(source, 0) + hit
    return counts

  def tokenizer(self) -> tokenizer_lib.Tokenizer:
    """The tokenizer that made these ids (ValueError if they came from a raw token file)."""
    spec = self.meta.get("tokenizer")
    if not spec:
      raise UserError(f"{self.root} holds tokens from a raw token file; no tokenizer is known")
    if spec != "bytes" and not Path(spec).is_absolute():
      spec = str(self.root / spec)
    return tokenizer_lib.load_tokenizer(spec)

  def summary(self) -> str:
    """What `lawsearch data prepare` prints: where the token files are, the vocabulary and its
    dtype, the tokenizer, and the tokens per split (with the characters and documents tokenized,
    for text sources)."""
    meta, n = self.meta, self.meta["n_tokens"]
    return (f"tokens: {self.root}\n"
            f"  vocab {meta['vocab_size']} ({meta['dtype']}), tokenizer {meta['tokenizer'] or '-'}"
            f"\n  train {n['train']:,} tokens, held-out {n['heldout']:,}"
            + (f", from {meta['n_chars']:,} characters in {meta['n_documents']} documents"
               if "n_chars" in meta else ""))


def token_dtype(vocab_size: int) -> str:
  """uint16 when every id fits (vocab_size <= 65536), else uint32."""
  return "uint16" if vocab_size <= 2**16 else "uint32"


# -- inputs ------------------------------------------------------------------------------------
def _text_files(path: str) -> list[Path]:
  p = Path(path).expanduser()
  if p.is_file():
    files = [p]
  elif p.is_dir():
    files = sorted(f for f in p.rglob("*.txt") if f.is_file())
  else:
    files = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
  if not files:
    raise UserError(f"data.path={path!r}: no such file, directory with *.txt files, or glob "
                     "match; point data.path at your text, or use data.source='default'")
  return files


def _input_files(spec: DataSpec) -> list[Path]:
  if spec.source == "arrayrecord":
    files = sorted(Path(f) for f in glob.glob(str(Path(spec.path).expanduser())))
    if not files:
      raise UserError(f"data.path={spec.path!r} matches no ArrayRecord shard; give a file or a "
                       "glob such as /data/corpus-*.array_record")
    return files
  if spec.source == "tokens":
    p = Path(spec.path).expanduser()
    if not p.is_file():
      raise UserError(f"data.path={spec.path!r} is not a token file or a directory with "
                       "meta.json; write one with `lawsearch data prepare` or point at it")
    return [p]
  return _text_files(spec.path)


def _source_name(spec: DataSpec, file: Path) -> str:
  """A file's source: its top-level folder under a directory data.path, else the file's name."""
  root = Path(spec.path).expanduser()
  if root.is_dir():
    parts = file.relative_to(root).parts
    return parts[0] if len(parts) > 1 else root.name
  return file.name


def _documents(spec: DataSpec, files: list[Path]) -> Iterator[tuple[str, str]]:
  """(source, text) of each input document: each text file, or each ArrayRecord record (UTF-8)."""
  if spec.source != "arrayrecord":
    for f in files:
      yield _source_name(spec, f), f.read_text(encoding="utf-8", errors="replace")
    return
  from array_record.python.array_record_module import ArrayRecordReader

  for f in files:
    reader = ArrayRecordReader(str(f))
    try:
      for record in reader.read_all():
        yield f.name, record.decode("utf-8", errors="replace")
    finally:
      reader.close()


def _chunks(doc: str, max_chars: int = 1 << 16) -> list[str]:
  """`doc` cut after blank lines into pieces of about `max_chars` at most (for parallel encode)."""
  out, cur, size = [], [], 0
  for para in _PARAGRAPH.split(doc):
    if size and size + len(para) > max_chars:
      out.append("".join(cur))
      cur, size = [], 0
    cur.append(para)
    size += len(para)
  if cur:
    out.append("".join(cur))
  return out


def _batches(docs: Iterator[tuple[str, str]],
             max_chars: int = 1 << 22) -> Iterator[list[tuple[str, str]]]:
  """Consecutive (source, text) documents grouped into lists of about `max_chars` characters (one
  encode call)."""
  batch, size = [], 0
  for doc in docs:
    batch.append(doc)
    size += len(doc[1])
    if size >= max_chars:
      yield batch
      batch, size = [], 0
  if batch:
    yield batch


def _key(spec: DataSpec, files: list[Path]) -> str:
  fields = dataclasses.asdict(spec)
  fields.pop("cache_dir")
  if spec.tokenizer not in ("bpe", "bytes"):
    tok = Path(spec.tokenizer).expanduser()
    fields["tokenizer_sha1"] = hashlib.sha1(tok.read_bytes()).hexdigest() if tok.is_file() else ""
  if spec.tokenizer != "bpe" and spec.source != "tokens":
    fields.pop("vocab_size")  # the tokenizer file fixes the vocabulary
  fields["files"] = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
  fields["version"] = FORMAT_VERSION
  return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


# -- writing -----------------------------------------------------------------------------------
class _SplitWriter:
  """Appends ids to train/held-out files block by block (every `period`-th block held out)."""

  def __init__(self, root: Path, dtype: str, heldout_fraction: float):
    self.dtype = np.dtype(dtype)
    self.period = round(1 / heldout_fraction) if heldout_fraction > 0 else 0
    self.files = {s: open(root / f"{s}.bin.tmp{os.getpid()}", "wb") for s in SPLITS}
    self.n = {s: 0 for s in SPLITS}
    self.pending = np.zeros((0,), self.dtype)
    self.block = 0

  def add(self, ids: np.ndarray) -> None:
    self.pending = np.concatenate([self.pending, ids.astype(self.dtype)])
    full = len(self.pending) // BLOCK_TOKENS
    for b in range(full):
      self._write(self.pending[b * BLOCK_TOKENS:(b + 1) * BLOCK_TOKENS])
    self.pending = self.pending[full * BLOCK_TOKENS:]

  def _write(self, block: np.ndarray) -> None:
    held = self.period and self.block % self.period == 0
    split = "heldout" if held else "train"
    self.files[split].write(block.tobytes())
    self.n[split] += len(block)
    self.block += 1

  def close(self, root: Path) -> dict[str, int]:
    if len(self.pending):
      self._write(self.pending)
    for s, f in self.files.items():
      f.close()
      os.replace(f.name, root / f"{s}.bin")
    return self.n


def _write_meta(root: Path, meta: Mapping[str, Any]) -> None:
  paths.write_text(root / "meta.json", json.dumps(meta, indent=2) + "\n")  # atomic


def _tokenize(spec: DataSpec, files: list[Path], root: Path) -> dict[str, Any]:
  from tqdm import tqdm

  if spec.tokenizer == "bpe":
    t0 = time.perf_counter()
    corpus.log(f"training a byte-level BPE, vocab {spec.vocab_size}, on {len(files)} input file(s)")
    tok = tokenizer_lib.train_bpe(
        (c for _, d in _documents(spec, files) for c in _chunks(d)), spec.vocab_size,
        root / "tokenizer.json")
    train_s = time.perf_counter() - t0
    corpus.log(f"BPE trained in {train_s:.1f} s")
    tok_name = "tokenizer.json"
  else:
    tok = tokenizer_lib.load_tokenizer(spec.tokenizer)
    train_s, tok_name = 0.0, tok.name
  t0 = time.perf_counter()
  dtype = token_dtype(tok.vocab_size)
  writer = _SplitWriter(root, dtype, spec.heldout_fraction)
  n_chars = n_docs = position = 0
  spans: list[list] = []  # [source, first token, end token) in the stream, in stream order
  with tqdm(desc="tokenizing", unit="char", unit_scale=True, file=sys.stderr) as bar:
    for docs in _batches(_documents(spec, files)):
      chunked = [_chunks(text) for _, text in docs]
      encoded = iter(tok.encode_batch([c for chunks in chunked for c in chunks]))
      for (source, text), chunks in zip(docs, chunked):
        ids = [i for _ in chunks for i in next(encoded)]
        ids.append(tok.eos_id)
        writer.add(np.asarray(ids, dtype=np.int64))
        if spans and spans[-1][0] == source:
          spans[-1][2] = position + len(ids)
        else:
          spans.append([source, position, position + len(ids)])
        position += len(ids)
        bar.update(len(text))
      n_chars += sum(len(text) for _, text in docs)
      n_docs += len(docs)
  n = writer.close(root)
  return dict(vocab_size=tok.vocab_size, eos_id=tok.eos_id, dtype=dtype, n_tokens=n,
              tokenizer=tok_name, n_chars=n_chars, n_documents=n_docs, source_spans=spans,
              tokenizer_train_s=round(train_s, 2),
              tokenize_s=round(time.perf_counter() - t0, 2))


def _import_raw(spec: DataSpec, file: Path, root: Path) -> dict[str, Any]:
  if not spec.token_dtype:
    raise UserError(f"{file} is a raw token file: set data.token_dtype ('uint16' or 'uint32') "
                     "and data.vocab_size to its vocabulary size")
  size, width = file.stat().st_size, np.dtype(spec.token_dtype).itemsize
  if size == 0 or size % width:
    raise UserError(f"{file} holds {size:,} bytes, not a whole number of {spec.token_dtype} ids "
                    f"({width} bytes each)" + ("" if size else ": it is empty") +
                    "; check data.token_dtype and that the file is complete")
  ids = np.memmap(file, dtype=spec.token_dtype, mode="r")
  if len(ids) and int(ids.max()) >= spec.vocab_size:
    raise UserError(f"{file} holds token id {int(ids.max())} >= data.vocab_size="
                     f"{spec.vocab_size}; set data.vocab_size to the file's vocabulary size")
  writer = _SplitWriter(root, spec.token_dtype, spec.heldout_fraction)
  step = BLOCK_TOKENS * 256
  for start in range(0, len(ids), step):
    writer.add(np.asarray(ids[start:start + step]))
  return dict(vocab_size=spec.vocab_size, eos_id=None, dtype=spec.token_dtype,
              n_tokens=writer.close(root), tokenizer="")


def _expected_files(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """File name -> {"bytes", "digest" (where recorded)} of a token set, from its meta.json: each
  split holds n_tokens ids of its dtype."""
  files = {name: dict(record) for name, record in (meta.get("files") or {}).items()
           if isinstance(record, dict)}
  size = np.dtype(meta["dtype"]).itemsize
  for split in SPLITS:
    files.setdefault(f"{split}.bin", {})["bytes"] = meta["n_tokens"][split] * size
  return files


def _file_records(root: Path, meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """{name: inputs.file_record} of the split files and a BPE trained here, for meta.json."""
  names = [f"{s}.bin" for s in SPLITS] + (["tokenizer.json"]
                                           if meta.get("tokenizer") == "tokenizer.json" else [])
  return {name: inputs.file_record(root / name) for name in names}


def _verified(root: Path, cache: bool) -> TokenSet | None:
  """The token set in `root`, its meta.json and its files checked (sizes, and checksums where
  meta.json records them: inputs.stale_files). A damaged cache is removed with a warning (None:
  the caller builds it again); a damaged token directory of the user's is an
  inputs.DamagedFile. A cache made before checksums were recorded gets them now."""
  recover = ("it is rebuilt" if cache else
             "write the directory again with `lawsearch data prepare` (its tokens: "
             "--source tokens --path FILE.bin), or point data.path at a good copy")
  try:
    meta = rundir.read_file(root / "meta.json", "token meta", recover=recover)
    problem = inputs.stale_files(root, _expected_files(meta))
    if problem:
      raise inputs.DamagedFile(root, "token set", problem, recover)
  except inputs.DamagedFile as e:
    if not cache:
      raise
    warnings.warn(f"token cache {root} is damaged ({e.problem}); rebuilding it", UserWarning,
                  stacklevel=3)
    (root / "meta.json").unlink(missing_ok=True)  # first: no process takes it for complete
    shutil.rmtree(root, ignore_errors=True)
    return None
  if cache and "files" not in meta:  # written before checksums were recorded
    meta = {**meta, "files": _file_records(root, meta)}
    try:
      _write_meta(root, meta)
    except OSError:  # a read-only cache: checked by size this time, and again next time
      pass
  return TokenSet(root, meta)


def build(spec: DataSpec) -> TokenSet:
  """The token set for `spec`, built and cached on first use (see module doc); a cached set is
  checked against the sizes and checksums its meta.json records before use, and built again
  when damaged."""
  if not isinstance(spec, DataSpec):
    raise UserError(f"tokens.build: spec must be a DataSpec (DataSpec.from_config(config.data)), "
                    f"got {type(spec).__name__}")
  if spec.source == "tokens":
    p = Path(spec.path).expanduser()
    if p.is_dir():
      if not (p / "meta.json").is_file():
        raise UserError(f"data.path={spec.path!r} is a directory without meta.json; point at a "
                         "token directory written by lawsearch, or at one raw .bin file")
      return _verified(p, cache=False)
  if spec.source == "default":
    spec = dataclasses.replace(spec, source="text", path=str(corpus.prepare(spec.cache)))
  files = _input_files(spec)
  if spec.source == "text" and sum(os.path.getsize(f) for f in files) == 0:
    raise UserError(f"data.path={spec.path!r} holds no text (0 bytes in {len(files)} file(s)); "
                    "point at the corpus")
  root = spec.cache / "tokens" / _key(spec, files)
  if (root / "meta.json").is_file():
    cached = _verified(root, cache=True)
    if cached is not None:
      return cached
  root.mkdir(parents=True, exist_ok=True)
  try:
    meta = _import_raw(spec, files[0], root) if spec.source == "tokens" else _tokenize(
        spec, files, root)
  except BaseException:  # a full disk, an interrupt: no half-written file of ours stays behind
    for tmp in root.glob(f"*.tmp{os.getpid()}"):
      tmp.unlink(missing_ok=True)
    raise
  meta.update(source=spec.source, path=spec.path, heldout_fraction=spec.heldout_fraction,
              block_tokens=BLOCK_TOKENS, format_version=FORMAT_VERSION)
  n = meta["n_tokens"]
  if not n["train"] or (spec.heldout_fraction > 0 and not n["heldout"]):
    shutil.rmtree(root)  # nothing cached that a later call would take for a corpus
    raise UserError(f"data.path={spec.path!r} gives {n['train']:,} train and {n['heldout']:,} "
                    f"held-out tokens at heldout_fraction={spec.heldout_fraction}; each split "
                    "asked for needs tokens: give a larger corpus")
  meta["files"] = _file_records(root, meta)
  _write_meta(root, meta)
  corpus.log(f"{root}: {n['train']:,} train + {n['heldout']:,} held-out tokens, "
             f"vocab {meta['vocab_size']}")
  return TokenSet(root, meta)


def run_tokenizer(data: Mapping[str, Any]) -> tokenizer_lib.Tokenizer:
  """The tokenizer of a run's `data` config section (not "synthetic"): the file it names (or
  "bytes"), loaded directly; for "bpe", the one trained with the run's token set (built first if
  it is not cached)."""
  if data["tokenizer"] != "bpe":
    return tokenizer_lib.load_tokenizer(data["tokenizer"])
  return build(DataSpec.from_config(data)).tokenizer()
