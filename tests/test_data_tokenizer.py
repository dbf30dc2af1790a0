"""Tokenizers: round trips, vocabulary sizes, file-format detection and its errors."""

import base64

import pytest

from lawsearch.data import tokenizer

TEXT = ("It was the best of times, it was the worst of times; naïve café — 3,141 ducks!\n\n"
        "The quick brown fox jumps over the lazy dog.\n")
CORPUS = [TEXT * 3, "the cat sat on the mat. " * 50,
          "Sing, O goddess, the anger of Achilles. " * 20]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
  return tokenizer.train_bpe(iter(CORPUS), 300, tmp_path_factory.mktemp("bpe") / "tok.json")


def test_bytes_are_utf8():
  tok = tokenizer.ByteTokenizer()
  assert tok.encode("é!") == [0xC3, 0xA9, 0x21]  # UTF-8 of U+00E9, then '!'
  assert tok.decode(tok.encode(TEXT) + [tok.eos_id]) == TEXT
  assert (tok.vocab_size, tok.eos_id) == (257, 256)


def test_bpe_round_trip_and_vocab(bpe):
  assert bpe.vocab_size == 300
  assert bpe.eos_id == 0  # the special token comes first
  ids = bpe.encode(TEXT)
  assert bpe.decode(ids) == TEXT
  assert max(ids) < bpe.vocab_size and 0 not in ids
  # Merges learnt from the corpus compress it below one id per byte.
  assert len(bpe.encode(CORPUS[1])) < len(CORPUS[1].encode()) / 2
  # Unseen characters still encode (byte fallback through the 256-byte alphabet).
  assert bpe.decode(bpe.encode("Ω≈ç")) == "Ω≈ç"
  assert bpe.encode_batch([TEXT, "cat"]) == [ids, bpe.encode("cat")]


def test_bpe_file_reloads_identically(bpe):
  again = tokenizer.load_tokenizer(bpe.name)
  assert again.encode(TEXT) == bpe.encode(TEXT)
  assert tokenizer.sniff_format(tokenizer.Path(bpe.name)) == "hf-json"


def test_bpe_vocab_too_small(tmp_path):
  with pytest.raises(ValueError, match="below 257"):
    tokenizer.train_bpe(iter(CORPUS), 200, tmp_path / "t.json")


def _tiktoken_file(path):
  """A ranks file of the 256 single bytes plus the merge b'th' (rank 256)."""
  tokens = [bytes([b]) for b in range(256)] + [b"th"]
  path.write_text("".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(tokens)))
  return path


def test_tiktoken_file(tmp_path):
  tok = tokenizer.load_tokenizer(str(_tiktoken_file(tmp_path / "tokenizer.model")))
  assert isinstance(tok, tokenizer.TiktokenTokenizer)
  assert (tok.vocab_size, tok.eos_id) == (259, 258)  # 257 ranks + begin/end of text
  # Independent reference: single bytes map to their value, "th" to 256.
  assert tok.encode("this") == [256, ord("i"), ord("s")]
  assert tok.decode(tok.encode(TEXT)) == TEXT


def test_sentencepiece_file(tmp_path):
  spm = pytest.importorskip("sentencepiece", reason="sentencepiece not installed")
  (tmp_path / "c.txt").write_text("\n".join(CORPUS * 4))
  spm.SentencePieceTrainer.train(input=str(tmp_path / "c.txt"), model_prefix=str(tmp_path / "sp"),
                                 vocab_size=80, model_type="bpe", minloglevel=2)
  tok = tokenizer.load_tokenizer(str(tmp_path / "sp.model"))
  assert isinstance(tok, tokenizer.SentencePieceTokenizer)
  assert tok.vocab_size == 80 and tok.eos_id == 2  # sentencepiece's default </s> id
  text = "the cat sat on the mat."
  assert tok.decode(tok.encode(text)) == text


def test_unknown_format_and_missing_file(tmp_path):
  bad = tmp_path / "vocab.txt"
  bad.write_text("hello world\nnot a tokenizer\n")
  with pytest.raises(ValueError, match="unknown tokenizer file format"):
    tokenizer.load_tokenizer(str(bad))
  bad.write_text("\nstarts like a sentencepiece protobuf\n")
  with pytest.raises(ValueError, match="unknown tokenizer file format"):
    tokenizer.load_tokenizer(str(bad))
  with pytest.raises(ValueError, match="does not exist"):
    tokenizer.load_tokenizer(str(tmp_path / "nope.model"))
