"""The grain pipeline: window contents, shuffling, per-process shards, checkpointed state, errors."""

import numpy as np
import pytest

from lawsearch.data import pipeline

SEQ = 16


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
  root = tmp_path_factory.mktemp("pipe")
  # Counting makes every window's content unique, so windows are identified by their tokens.
  (root / "a.txt").write_text(" ".join(str(i) for i in range(4000)))
  return dict(source="text", path=str(root / "a.txt"), tokenizer="bytes", heldout_fraction=0.25,
              cache_dir=str(root / "cache"), num_threads=2, prefetch=2)


def _loader(cfg, **kw):
  args = dict(seq_len=SEQ, global_batch_size=8, seed=0, process_index=0, process_count=1)
  return pipeline.make_loader(cfg, **{**args, **kw})


def _windows(ids):
  """Reference: every window of SEQ+1 tokens at stride SEQ, as rows."""
  n = (len(ids) - 1) // SEQ
  return np.stack([ids[w * SEQ:w * SEQ + SEQ + 1] for w in range(n)]).astype(np.int32)


def _rows(batches):
  return np.concatenate([np.concatenate([b["inputs"], b["targets"][:, -1:]], 1) for b in batches])


def test_batches_are_shifted_windows_and_an_epoch_covers_each_once(cfg):
  loader = _loader(cfg)
  ref = _windows(np.asarray(loader.tokens.array("train")))
  first = next(loader)
  assert first["inputs"].shape == first["targets"].shape == (8, SEQ)
  assert first["inputs"].dtype == np.int32
  np.testing.assert_array_equal(first["inputs"][:, 1:], first["targets"][:, :-1])
  epoch = _rows([first] + [next(loader) for _ in range(loader.batches_per_epoch - 1)])
  # A shuffled permutation of the reference windows (drop_remainder drops the last few).
  ref_set = {r.tobytes() for r in ref}
  assert len({r.tobytes() for r in epoch}) == len(epoch) == (len(ref) // 8) * 8
  assert all(r.tobytes() in ref_set for r in epoch)
  assert not np.array_equal(epoch, ref[:len(epoch)])  # shuffled, not file order


def test_seeded_order_and_new_order_each_epoch(cfg):
  a, b, c = _loader(cfg), _loader(cfg), _loader(cfg, seed=1)
  n = a.batches_per_epoch
  ra, rb, rc = (_rows([next(x) for _ in range(2 * n)]) for x in (a, b, c))
  np.testing.assert_array_equal(ra, rb)
  assert not np.array_equal(ra, rc)
  assert not np.array_equal(ra[:n * 8], ra[n * 8:])  # epoch 2 reshuffled


def test_processes_get_disjoint_shards_covering_the_windows(cfg):
  ref = _windows(np.asarray(_loader(cfg).tokens.array("train")))
  parts = [_loader(cfg, process_index=p, process_count=2) for p in range(2)]
  assert all(p.local_batch_size == 4 for p in parts)
  seen = [{r.tobytes() for r in _rows([next(p) for _ in range(p.batches_per_epoch)])}
          for p in parts]
  assert not seen[0] & seen[1]
  # Process p holds windows p, p+2, ...: its first epoch draws only from those.
  for p in range(2):
    assert seen[p] <= {r.tobytes() for r in ref[p::2]}


def test_heldout_is_one_ordered_pass(cfg):
  loader = _loader(cfg, split="heldout", global_batch_size=2)
  ref = _windows(np.asarray(loader.tokens.array("heldout")))
  rows = _rows(list(loader))
  np.testing.assert_array_equal(rows, ref[:len(rows)])
  assert len(rows) == (len(ref) // 2) * 2


def test_heldout_sample_is_spread_over_the_whole_split(cfg):
  full = _loader(cfg, split="heldout", global_batch_size=2)
  ref = _windows(np.asarray(full.tokens.array("heldout")))
  sample = _loader(cfg, split="heldout", global_batch_size=2, heldout_windows=6)
  expected = np.unique(np.linspace(0, len(ref) - 1, 6).round().astype(int))
  np.testing.assert_array_equal(sample.sample, expected)
  assert expected[0] == 0 and expected[-1] == len(ref) - 1  # first and last window both read
  np.testing.assert_array_equal(_rows(list(sample)), ref[expected])
  # Two processes read disjoint halves of the same sample.
  halves = [_loader(cfg, split="heldout", global_batch_size=2, heldout_windows=6,
                    process_index=p, process_count=2) for p in (0, 1)]
  np.testing.assert_array_equal(np.sort(np.concatenate([_rows(list(h)) for h in halves]), 0),
                                np.sort(ref[expected], 0))


def test_orbax_checkpoint_restores_the_position(cfg, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  loader = _loader(cfg)
  for _ in range(3):
    next(loader)
  with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
    mngr.save(3, args=ocp.args.Composite(data=loader.save_args()))
    mngr.wait_until_finished()
    expected = _rows([next(loader) for _ in range(4)])
    fresh = _loader(cfg)
    mngr.restore(3, args=ocp.args.Composite(data=fresh.restore_args()))
  np.testing.assert_array_equal(_rows([next(fresh) for _ in range(4)]), expected)
  # The plain state dict does the same without orbax.
  again = _loader(cfg)
  again.set_state(fresh.get_state())
  np.testing.assert_array_equal(_rows([next(again)]), _rows([next(fresh)]))


def test_errors(cfg):
  with pytest.raises(ValueError, match="exceeds the model's vocab_size=256"):
    _loader(cfg, model_vocab_size=256)  # bytes tokenizer: 257 ids
  with pytest.raises(ValueError, match="fewer than one local batch"):
    _loader(cfg, seq_len=4096)
  with pytest.raises(ValueError, match="not divisible by process_count=3"):
    _loader(cfg, process_count=3)
  with pytest.raises(ValueError, match="split='test' is unknown"):
    _loader(cfg, split="test")
  with pytest.raises(ValueError, match="no such file"):
    _loader({**cfg, "path": cfg["path"] + ".missing"})
