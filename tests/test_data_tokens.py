"""Token files: contents against an independent encoding, held-out blocks, caching, inputs, errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from lawsearch.data import tokens
from lawsearch.errors import UserError

DOCS = ["first document: " + "abc " * 3000, "second, ñ, " * 700, "third\n\nwith paragraphs\n\n" * 400]


def _expected_stream(docs):
  """Byte-tokenizer reference: UTF-8 bytes of each document, then end-of-text (256)."""
  return np.array([b for d in docs for b in list(d.encode()) + [256]], np.int64)


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("text")
  for i, d in enumerate(DOCS):
    (root / f"doc{i}.txt").write_text(d, encoding="utf-8")
  return root


def _spec(tmp_path, **kw):
  return tokens.DataSpec(**{"source": "text", "tokenizer": "bytes", "heldout_fraction": 0.25,
                            "cache_dir": str(tmp_path / "cache"), **kw})


def test_text_to_tokens_matches_reference_with_heldout_blocks(text_dir, tmp_path):
  toks = tokens.build(_spec(tmp_path, path=str(text_dir)))
  stream = _expected_stream(DOCS)
  assert toks.meta["dtype"] == "uint16" and toks.vocab_size == 257
  # Blocks 0, 4, 8, ... of BLOCK_TOKENS go to held-out (fraction 1/4), the rest to train.
  blocks = [stream[i:i + tokens.BLOCK_TOKENS] for i in range(0, len(stream), tokens.BLOCK_TOKENS)]
  np.testing.assert_array_equal(toks.array("heldout"), np.concatenate(blocks[0::4]))
  np.testing.assert_array_equal(
      toks.array("train"), np.concatenate([b for i, b in enumerate(blocks) if i % 4]))
  assert toks.meta["n_documents"] == 3 and toks.meta["n_chars"] == sum(map(len, DOCS))
  assert toks.tokenizer().decode(toks.array("heldout")[:16]) == DOCS[0][:16]


def test_source_spans_name_the_sources_of_heldout_positions(tmp_path):
  # A corpus laid out as the default one: a folder per source, documents inside.
  root = tmp_path / "corpus"
  for source, docs in {"alpha": DOCS[:2], "beta": DOCS[2:]}.items():
    (root / source).mkdir(parents=True)
    for i, d in enumerate(docs):
      (root / source / f"d{i}.txt").write_text(d, encoding="utf-8")
  toks = tokens.build(_spec(tmp_path, path=str(root)))
  n_alpha = sum(len(d.encode()) + 1 for d in DOCS[:2])
  n_all = n_alpha + len(DOCS[2].encode()) + 1
  assert toks.meta["source_spans"] == [["alpha", 0, n_alpha], ["beta", n_alpha, n_all]]
  # Held-out block j is stream block 4 j (fraction 1/4): its tokens map back into the stream.
  held = np.arange(toks.n_tokens("heldout"))
  stream = toks.heldout_stream_position(held)
  np.testing.assert_array_equal(_expected_stream(DOCS)[stream], toks.array("heldout"))
  expected = {"alpha": int(np.sum(stream < n_alpha)), "beta": int(np.sum(stream >= n_alpha))}
  assert toks.heldout_sources(held) == expected and min(expected.values()) > 0


def test_second_build_is_a_cache_hit(text_dir, tmp_path):
  first = tokens.build(_spec(tmp_path, path=str(text_dir)))
  stamp = (first.root / "train.bin").stat().st_mtime_ns
  again = tokens.build(_spec(tmp_path, path=str(text_dir)))
  assert again.root == first.root and (again.root / "train.bin").stat().st_mtime_ns == stamp
  # A different held-out fraction is a different token set.
  other = tokens.build(_spec(tmp_path, path=str(text_dir), heldout_fraction=0.5))
  assert other.root != first.root


def test_bpe_tokens_stay_below_vocab(text_dir, tmp_path):
  toks = tokens.build(_spec(tmp_path, path=str(text_dir / "doc1.txt"), tokenizer="bpe",
                            vocab_size=300, heldout_fraction=0))  # one document: all train
  ids = np.concatenate([toks.array("train"), toks.array("heldout")])
  # A small text has fewer merges to learn than asked for: the vocabulary is at most 300.
  assert 257 < toks.vocab_size <= 300 and ids.max() < toks.vocab_size
  assert ids[-1] == toks.meta["eos_id"] == 0
  assert toks.tokenizer().decode(ids[:-1]) == DOCS[1]


def test_a_corpus_too_small_for_its_splits_is_refused_and_not_cached(text_dir, tmp_path):
  spec = _spec(tmp_path, path=str(text_dir / "doc1.txt"), tokenizer="bpe",
               vocab_size=300)  # one block: all of it held out
  with pytest.raises(UserError, match="gives 0 train .* held-out tokens at heldout_fraction=0.25"):
    tokens.build(spec)
  assert not list((tmp_path / "cache" / "tokens").iterdir())
  (tmp_path / "empty.txt").write_text("")
  with pytest.raises(UserError, match="holds no text"):
    tokens.build(_spec(tmp_path, path=str(tmp_path / "empty.txt")))


def test_raw_token_file_import(tmp_path):
  raw = np.arange(10_000, dtype=np.uint32) % 70_000
  (tmp_path / "ids.bin").write_bytes(raw.tobytes())
  spec = _spec(tmp_path, source="tokens", path=str(tmp_path / "ids.bin"), tokenizer="",
               token_dtype="uint32", vocab_size=70_000, heldout_fraction=0.5)
  toks = tokens.build(spec)
  assert toks.meta["dtype"] == "uint32"
  np.testing.assert_array_equal(np.concatenate([toks.array("heldout")[:4096],
                                                toks.array("train")[:4096]]), raw[:8192])
  # The directory it wrote is itself a "tokens" source, used in place.
  assert tokens.build(_spec(tmp_path, source="tokens", path=str(toks.root))).root == toks.root
  with pytest.raises(ValueError, match="token id 9999 >= data.vocab_size=1000"):
    tokens.build(_spec(tmp_path, source="tokens", path=str(tmp_path / "ids.bin"),
                       token_dtype="uint32", vocab_size=1000))
  with pytest.raises(ValueError, match="set data.token_dtype"):
    tokens.build(_spec(tmp_path, source="tokens", path=str(tmp_path / "ids.bin")))


def test_arrayrecord_source(tmp_path):
  from array_record.python.array_record_module import ArrayRecordWriter

  for shard in range(2):
    writer = ArrayRecordWriter(str(tmp_path / f"docs-{shard}.array_record"), "group_size:1")
    for d in DOCS[shard::2]:
      writer.write(d.encode())
    writer.close()
  toks = tokens.build(_spec(tmp_path, source="arrayrecord",
                            path=str(tmp_path / "docs-*.array_record"), heldout_fraction=0))
  np.testing.assert_array_equal(toks.array("train"), _expected_stream([DOCS[0], DOCS[2], DOCS[1]]))
  assert toks.n_tokens("heldout") == 0


def test_dtype_by_vocab():
  assert tokens.token_dtype(65536) == "uint16" and tokens.token_dtype(65537) == "uint32"


@pytest.mark.parametrize("kw, message", [
    (dict(source="text", path="/no/such/dir"), "no such file"),
    (dict(source="arrayrecord", path="/no/such/*.array_record"), "matches no ArrayRecord"),
    (dict(source="tokens", path="/no/such.bin"), "not a token file"),
    (dict(source="text"), "needs data.path"),
    (dict(source="parquet", path="x"), "unknown"),
    (dict(source="text", path="x", heldout_fraction=0.9), r"\[0, 0.5\]"),
    (dict(vocab_size=10), "below 257"),  # before any corpus is read or tokenizer trained
])
def test_bad_specs(tmp_path, kw, message):
  with pytest.raises(ValueError, match=message):
    tokens.build(tokens.DataSpec(cache_dir=str(tmp_path), **kw))


def test_from_config_ignores_pipeline_keys():
  spec = tokens.DataSpec.from_config({"source": "text", "path": "a.txt", "num_threads": 4,
                                      "vocab_size": 512})
  assert (spec.source, spec.path, spec.vocab_size, spec.tokenizer) == ("text", "a.txt", 512, "bpe")
  assert json.dumps(tokens.dataclasses.asdict(spec))  # plain fields only


def test_summary_says_where_the_tokens_are_and_how_many():
  meta = {"vocab_size": 4096, "dtype": "uint16", "tokenizer": "bpe.json", "n_chars": 1234567,
          "n_documents": 12, "n_tokens": {"train": 300000, "heldout": 4096}}
  assert tokens.TokenSet(Path("/c/tokens/k"), meta).summary().splitlines() == [
      "tokens: /c/tokens/k", "  vocab 4096 (uint16), tokenizer bpe.json",
      "  train 300,000 tokens, held-out 4,096, from 1,234,567 characters in 12 documents"]
  # A raw token file: no tokenizer, no characters.
  raw = {"vocab_size": 4096, "dtype": "uint16", "tokenizer": "",
         "n_tokens": {"train": 300000, "heldout": 4096}}
  assert tokens.TokenSet(Path("/t"), raw).summary().splitlines()[1:] == [
      "  vocab 4096 (uint16), tokenizer -", "  train 300,000 tokens, held-out 4,096"]


def test_cli_data_prepare(text_dir, tmp_path, capsys):
  from lawsearch import cli

  argv = ["data", "prepare", "--source", "text", "--path", str(text_dir), "--tokenizer", "bytes",
          "--cache-dir", str(tmp_path)]
  assert cli.main(argv) == 0
  n = len(_expected_stream(DOCS))
  out = capsys.readouterr().out
  # Default held-out fraction 0.01: of these < 100 blocks only block 0 is held out.
  assert "vocab 257 (uint16)" in out and f"train {n - 4096:,} tokens, held-out 4,096" in out
  assert out.startswith(f"tokens: {tmp_path / 'tokens'}")
  assert cli.main(argv[:5] + [str(tmp_path / "missing")] + argv[6:]) == 2
  assert "no such file" in capsys.readouterr().err
