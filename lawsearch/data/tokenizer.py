"""Tokenizers behind one interface: `encode`, `encode_batch`, `decode`, `vocab_size`, `eos_id`.

Kinds (chosen by the config's `tokenizer` string, see `load_tokenizer`):
  "bpe"     byte-level BPE trained here with Hugging Face `tokenizers` (`train_bpe`), saved as a
            tokenizers JSON file; id 0 is the end-of-text token "<|endoftext|>".
  "bytes"   raw UTF-8 bytes, ids 0..255, end-of-text 256 (vocab 257); no training, for tests.
  a path    a tokenizer file, its format read from its content:
            - tiktoken BPE ranks ("<base64 token> <rank>" lines; e.g. LLaMA-3's tokenizer.model),
              split with the LLaMA-3 pre-tokenizer pattern, special tokens <|begin_of_text|> and
              <|end_of_text|> appended after the ranks;
            - sentencepiece model (binary protobuf; e.g. LLaMA-2's tokenizer.model);
            - Hugging Face tokenizers JSON (e.g. one written by `train_bpe`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

from lawsearch.errors import UserError

EOT = "<|endoftext|>"
# End-of-text tokens of tokenizers JSON files: lawsearch's and GPT-2's, LLaMA-3's, LLaMA-2's and
# Mistral's, Gemma's.
EOS_TOKENS = (EOT, "<|end_of_text|>", "</s>", "<eos>")
# LLaMA-3's pre-tokenizer pattern (the cl100k pattern with digit groups of at most three).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?"
                  r"[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_TIKTOKEN_LINE = re.compile(rb"^[A-Za-z0-9+/]+=* \d+$")


class Tokenizer(Protocol):
  """What every tokenizer offers. Ids are ints in [0, vocab_size)."""

  vocab_size: int
  eos_id: int
  name: str

  def encode(self, text: str) -> list[int]: ...

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

  def decode(self, ids: Iterable[int]) -> str: ...


@dataclasses.dataclass(frozen=True)
class ByteTokenizer:
  """UTF-8 bytes as ids 0..255; end-of-text is 256."""

  vocab_size: int = 257
  eos_id: int = 256
  name: str = "bytes"

  def encode(self, text: str) -> list[int]:
    return list(text.encode("utf-8"))

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return [self.encode(t) for t in texts]

  def decode(self, ids: Iterable[int]) -> str:
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
  """A Hugging Face `tokenizers` tokenizer (JSON file); end-of-text is the first of EOS_TOKENS
  it has ("<|endoftext|>" in those trained here)."""

  def __init__(self, tok, name: str):
    self._tok = tok
    self.name = name
    self.vocab_size = tok.get_vocab_size()
    eos = next((i for i in map(tok.token_to_id, EOS_TOKENS) if i is not None), None)
    if eos is None:
      raise UserError(f"tokenizer {name} has none of the end-of-text tokens {EOS_TOKENS}; add "
                      f"{EOT!r} as a special token")
    self.eos_id = eos

  def encode(self, text: str) -> list[int]:
    return self._tok.encode(text).ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in self._tok.encode_batch(list(texts))]

  def decode(self, ids: Iterable[int]) -> str:
    return self._tok.decode(list(ids))


class TiktokenTokenizer:
  """A tiktoken BPE ranks file with the LLaMA-3 pattern; specials follow the ranks."""

  def __init__(self, path: Path):
    import tiktoken

    ranks = {}
    for line in path.read_bytes().splitlines():
      if not line.strip():
        continue
      token, rank = line.split()
      ranks[base64.b64decode(token)] = int(rank)
    n_ranks = len(ranks)
    specials = {"<|begin_of_text|>": n_ranks, "<|end_of_text|>": n_ranks + 1}
    self._enc = tiktoken.Encoding(name=path.name, pat_str=LLAMA3_PATTERN,
                                  mergeable_ranks=ranks, special_tokens=specials)
    self.name = str(path)
    self.vocab_size = n_ranks + len(specials)
    self.eos_id = specials["<|end_of_text|>"]

  def encode(self, text: str) -> list[int]:
    return self._enc.encode_ordinary(text)

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return self._enc.encode_ordinary_batch(list(texts))

  def decode(self, ids: Iterable[int]) -> str:
    return self._enc.decode(list(ids))


class SentencePieceTokenizer:
  """A sentencepiece model file; end-of-text is its </s> id (or a new id if it has none)."""

  def __init__(self, path: Path):
    try:
      import sentencepiece as spm
    except ImportError as e:
      raise UserError(f"{path} is a sentencepiece model; install it: pip install sentencepiece"
                       ) from e
    try:
      self._sp = spm.SentencePieceProcessor(model_file=str(path))
    except RuntimeError as e:
      raise UserError(f"unknown tokenizer file format: {path} is not a valid sentencepiece "
                       f"model ({e}); give a tiktoken, sentencepiece or tokenizers JSON file"
                       ) from e
    self.name = str(path)
    n = self._sp.get_piece_size()
    eos = self._sp.eos_id()
    self.eos_id = eos if eos >= 0 else n
    self.vocab_size = n if eos >= 0 else n + 1

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return self._sp.encode(list(texts))

  def decode(self, ids: Iterable[int]) -> str:
    return self._sp.decode([i for i in ids if i != self.eos_id])


def check_bpe_vocab_size(vocab_size: int) -> None:
  """ValueError unless a byte-level BPE can have `vocab_size` ids (256 bytes + end-of-text)."""
  if vocab_size < 257:
    raise UserError(f"BPE vocab_size={vocab_size} is below 257 (256 bytes + end-of-text); "
                     "raise data.vocab_size (--vocab-size), or use tokenizer='bytes'")


def train_bpe(texts: Iterator[str], vocab_size: int, path: str | os.PathLike) -> HFTokenizer:
  """Trains a byte-level BPE of `vocab_size` ids (>= 257) on `texts` and saves it as JSON at `path`.

  Id 0 is "<|endoftext|>"; ids 1..256 are the 256 bytes, so any text encodes. A text too small to
  offer vocab_size - 257 merges gives a smaller vocabulary (read `.vocab_size`).
  """
  from tokenizers import Tokenizer as HFTok, decoders, models, pre_tokenizers, trainers

  check_bpe_vocab_size(vocab_size)
  tok = HFTok(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT],
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                show_progress=False)
  tok.train_from_iterator(texts, trainer=trainer)
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  tok.save(tmp)
  os.replace(tmp, path)
  return HFTokenizer(tok, str(path))


def sniff_format(path: Path) -> str:
  """'tiktoken' | 'sentencepiece' | 'hf-json' from the file's first bytes; ValueError otherwise."""
  head = path.read_bytes()[:4096]
  first = head.split(b"\n", 1)[0].strip()
  if _TIKTOKEN_LINE.match(first):
    return "tiktoken"
  if head.lstrip()[:1] == b"{":
    try:
      if "model" in json.loads(path.read_text()):
        return "hf-json"
    except (UnicodeDecodeError, json.JSONDecodeError):
      pass
  # A sentencepiece ModelProto starts with field 1 (repeated SentencePiece, length-delimited): 0x0a.
  if head[:1] == b"\n":
    return "sentencepiece"
  raise UserError(
      f"unknown tokenizer file format: {path} is neither a tiktoken ranks file "
      "('<base64> <rank>' lines), a sentencepiece .model, nor a tokenizers JSON; give one of "
      "those, or tokenizer='bpe' to train one here")


def load_tokenizer(spec: str) -> Tokenizer:
  """A tokenizer from "bytes" or a file path (tiktoken, sentencepiece or tokenizers JSON).

  "bpe" is not loadable by itself: it is trained for a corpus by `lawsearch.data.tokens`, which
  then loads its JSON file through this function.
  """
  if spec == "bytes":
    return ByteTokenizer()
  path = Path(spec).expanduser().resolve()
  if not path.is_file():
    raise UserError(f"tokenizer file {spec!r} does not exist; give a tiktoken or sentencepiece "
                     "model file, 'bpe' (train one on the corpus) or 'bytes'")
  kind = sniff_format(path)
  if kind == "tiktoken":
    return TiktokenTokenizer(path)
  if kind == "sentencepiece":
    return SentencePieceTokenizer(path)
  from tokenizers import Tokenizer as HFTok

  return HFTokenizer(HFTok.from_file(str(path)), str(path))
