"""Every kind of file lawsearch writes and reads back, damaged at random (hypothesis): cut short,
bytes flipped, a value of another type, a key dropped, the document wrapped in an array. Reading
it (`rundir.read_file`, the one reader of each kind) either gives a document that passes the
kind's schema, or raises one `DamagedFile` whose message is one line naming the file, what is
wrong and how to recover; a log repaired with `repair=True` reads back clean, and a damaged token
cache is rebuilt. The stages read through the same readers: `arch --workdir` and `fit --runs` on
a damaged run exit 0 or 2 with one line, never a traceback."""

import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from lawsearch import arch, cli, configlib, inputs, rundir, runs
from lawsearch.laws import ConditionalLaw

NANO = "configs/train.py:preset=nano,data=synthetic"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _samples() -> dict[str, bytes]:
  """A good file of each kind in rundir.FILES, as lawsearch writes it."""
  config = configlib.load(NANO)
  spec = arch.preset("nano")
  result = runs.result_record(spec, tokens=1e6, loss=3.0, steps=10, seed=0)
  lines = lambda docs: "".join(json.dumps(d) + "\n" for d in docs)
  docs = {
      "config": rundir.plain(config),
      "identity": rundir.RunIdentity.of(config).to_dict(),
      "result": result,
      "imported": {"source": "/models/x", "model_type": "llama"},
      "metrics": lines({"step": s, "loss": 4.0 - s / 10, "lr": 1e-3} for s in range(1, 6)),
      "history": lines([{"step": 3, "changes": {"train.log_every": [10, 3]}}]),
      "claim": {"attempt": 1, "worker": "w", "started": 1.0, "heartbeat": 2.0, "released": False,
                "heartbeat_s": 30.0, "stale_s": 300.0},
      "failed": {"error": "NonFiniteLossError: nan", "worker": "w", "attempt": 1, "time": 3.0},
      "token meta": {"vocab_size": 300, "eos_id": 0, "dtype": "uint16",
                     "n_tokens": {"train": 8192, "heldout": 4096}, "tokenizer": "tokenizer.json"},
      "corpus": {"version": 1, "characters": 100, "sources": [{"name": "a"}]},
      "task cache": {"version": 1, "tasks": [{"name": "piqa", "items": 1838}],
                     "files": {"piqa.jsonl": {"bytes": 568339, "digest": "sha256:00"}}},
      "law": json.loads(ConditionalLaw.paper("80m-297m").to_json()),
      "accuracy law": {"form": "linear", "params": [1.5, -0.3], "chance": 0.25, "n_points": 5,
                       "loss_range": [3.0, 4.0], "rmse": 0.01, "level": 0.95,
                       "boot": [[1.4, -0.29]]},
      "search": {"picks": {"surefire": spec.fields()}, "candidates": [], "n_params": 1e6,
                 "tokens": 2e7, "target": 1.01},
  }
  assert set(docs) == set(rundir.FILES)  # a new kind gets a sample here
  return {k: (v if isinstance(v, str) else json.dumps(v, indent=1)).encode()
          for k, v in docs.items()}


SAMPLES = _samples()
KINDS = sorted(SAMPLES)


def _other_type(value):
  """A JSON value of another type than `value`."""
  for candidate in ("text", 7, 2.5, [1], {"a": 1}, None, True):
    if type(candidate) is not type(value):
      return candidate
  return None


@st.composite
def damaged(draw):
  """(kind, bytes): a good file of a kind, damaged one way."""
  kind = draw(st.sampled_from(KINDS))
  raw = SAMPLES[kind]
  how = draw(st.sampled_from(["truncate", "flip", "retype", "drop", "wrap", "garbage"]))
  if how == "truncate":
    return kind, raw[:draw(st.integers(0, len(raw) - 1))]
  if how == "flip":
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
      data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return kind, bytes(data)
  if how == "garbage":
    return kind, draw(st.binary(max_size=64))
  if rundir.FILES[kind].top == "lines":
    docs = [json.loads(line) for line in raw.decode().splitlines()]
    i = draw(st.integers(0, len(docs) - 1))
    docs[i] = [docs[i]] if how == "wrap" else draw(st.sampled_from(["x", 3, None, [1]]))
    return kind, "".join(json.dumps(d) + "\n" for d in docs).encode()
  doc = json.loads(raw)
  if how == "wrap":
    return kind, json.dumps([doc]).encode()
  key = draw(st.sampled_from(sorted(doc)))
  if how == "drop":
    doc.pop(key)
  else:
    doc[key] = _other_type(doc[key])
  return kind, json.dumps(doc).encode()


def _check_one_line(error: inputs.DamagedFile, path) -> None:
  message = str(error)
  assert "\n" not in message and str(path) in message, message
  assert error.problem and error.recover and error.recover in message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_a_damaged_file_reads_as_a_valid_document_or_one_damaged_file_error(tmp_path_factory,
                                                                            case):
  kind, raw = case
  path = tmp_path_factory.mktemp("damaged") / "file.json"
  path.write_bytes(raw)
  try:
    doc = rundir.read_file(path, kind)
  except inputs.DamagedFile as e:
    _check_one_line(e, path)
  else:  # the damage left a document that passes the kind's schema (read_file checked it)
    assert isinstance(doc, list if rundir.FILES[kind].top == "lines" else dict)
  assert path.read_bytes() == raw  # reading never writes without repair


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["metrics", "history"]), st.integers(1, 40), st.binary(max_size=8))
@example("metrics", 28, b"}")  # '{"step": 5, "loss": 3.5, ...' cut to '{"step": 5}': parses, altered
def test_a_log_cut_short_or_garbled_is_repaired_cleanly(tmp_path_factory, kind, cut, junk):
  path = tmp_path_factory.mktemp("log") / "log.jsonl"
  raw = SAMPLES[kind]
  path.write_bytes(raw[:-cut] + junk if cut < len(raw) else junk)
  good = [json.loads(line) for line in raw.decode().splitlines()]
  try:
    rundir.read_file(path, kind)
  except inputs.DamagedFile as e:
    _check_one_line(e, path)
    assert "--repair" in e.recover
  with pytest.warns(UserWarning) if _damaged(path, kind) else _nothing():
    repaired = rundir.read_file(path, kind, repair=True)
  assert repaired == rundir.read_file(path, kind)  # rewritten clean: reads without repair
  assert all(d in good for d in repaired)  # only whole, unchanged records are kept


def _damaged(path, kind) -> bool:
  try:
    rundir.read_file(path, kind)
    return False
  except inputs.DamagedFile:
    return True


class _nothing:
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
  """A run directory with a good config.json and a run root with two good records."""
  base = tmp_path_factory.mktemp("stages")
  run = base / "run"
  run.mkdir()
  (run / "config.json").write_bytes(SAMPLES["config"])
  root = base / "root"
  for name, loss in (("a", 3.5), ("b", 3.0)):
    (root / name).mkdir(parents=True)
    (root / name / "result.json").write_text(json.dumps({**json.loads(SAMPLES["result"]),
                                                         "loss": loss}))
  return base


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=damaged().filter(lambda c: c[0] in ("config", "result")))
def test_stages_read_damaged_records_as_one_line(run_dirs, capsys, case):
  kind, raw = case
  target = run_dirs / ("run/config.json" if kind == "config" else "root/b/result.json")
  good = target.read_bytes()
  target.write_bytes(raw)
  try:
    argv = (["arch", "--workdir", str(run_dirs / "run")] if kind == "config" else
            ["fit", "--runs", str(run_dirs / "root"), "--bootstrap", "0", "--no-validate"])
    code = cli.main(argv)
  finally:
    target.write_bytes(good)
  err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
  assert code in (0, 2) and all(line.startswith("lawsearch: ") for line in err), err
  if code == 2:  # one error line (a warning about the input may precede it)
    assert [line for line in err if line.startswith("lawsearch: error: ")] == err[-1:], err


@pytest.fixture(scope="module")
def token_cache(tmp_path_factory):
  """A small corpus and its token cache."""
  from lawsearch.data import tokens  # pylint: disable=import-outside-toplevel

  base = tmp_path_factory.mktemp("tokens")
  words = "the cat sat on a mat while dogs ran far away from home".split()
  (base / "corpus.txt").write_text("\n\n".join(" ".join(words[(i * 7 + j) % len(words)]
                                                        for j in range(60)) for i in range(200)))
  spec = tokens.DataSpec(source="text", path=str(base / "corpus.txt"), vocab_size=300,
                         heldout_fraction=0.1, cache_dir=str(base / "cache"))
  built = tokens.build(spec)
  pristine = base / "pristine"
  shutil.copytree(built.root, pristine)
  return spec, built.root, pristine


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["meta.json", "train.bin", "heldout.bin", "tokenizer.json"]),
       st.sampled_from(["truncate", "flip", "empty", "remove"]), st.integers(0, 10**6))
def test_a_damaged_token_cache_is_rebuilt(token_cache, name, how, where):
  from lawsearch.data import tokens  # pylint: disable=import-outside-toplevel

  spec, root, pristine = token_cache
  path = root / name
  raw = path.read_bytes()
  if how == "truncate":
    path.write_bytes(raw[:where % len(raw)])
  elif how == "flip":
    data = bytearray(raw)
    data[where % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))
  elif how == "empty":
    path.write_bytes(b"")
  else:
    path.unlink()
  with pytest.warns(UserWarning, match="rebuilding it") if name != "meta.json" or how != "remove" \
      else _nothing():
    rebuilt = tokens.build(spec)
  assert rebuilt.root == root
  for f in ("train.bin", "heldout.bin", "tokenizer.json"):
    assert (root / f).read_bytes() == (pristine / f).read_bytes()  # the same set, rebuilt
  assert tokens.build(spec).meta == rebuilt.meta  # and taken as it is the next time
