"""The grain input pipeline: shuffled windows of seq_len+1 tokens -> {"inputs", "targets"} batches.

Window w of a split is tokens[w*seq_len : w*seq_len + seq_len + 1] (consecutive windows share one
token), read from a memory-mapped token file. Process p of P owns windows p, p+P, ... (disjoint
across processes). Each epoch it permutes them with a generator seeded by (seed, epoch) and cuts
the permutation into batches of global_batch_size/P windows (a remainder of fewer windows is
left out of that epoch). Batch b is a pure function of b, so grain's iterator state is just the
next batch index; batches are gathered in background threads (one numpy gather per batch) and
prefetched.

The train split repeats forever; the held-out split is one pass in file order (for evaluation),
over every window or over a fixed sample of `heldout_windows` windows spread evenly across the whole
split (so every part of the corpus, not only its first blocks, is measured).
The iterator's position is saved with a checkpoint through grain's orbax handler:

    mngr.save(step, args=ocp.args.Composite(state=..., data=loader.save_args()))
    mngr.restore(step, args=ocp.args.Composite(state=..., data=loader.restore_args()))
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import grain
import grain.checkpoint
import numpy as np

from lawsearch.data import tokens as tokens_lib
from lawsearch.errors import UserError


class BatchReader:
  """Batch index b -> {"inputs", "targets"}: int32 [batch, seq_len] (targets shifted by one).

  windows: this process's window indices [n]; batch b of epoch e = b // (n // batch) takes
  positions (b mod n//batch)*batch ... +batch of the epoch's permutation of `windows` (identity
  when shuffle is False). The memory map opens lazily, so the reader pickles cheaply.
  """

  def __init__(self, path: Path, dtype: str, n_tokens: int, seq_len: int, windows: np.ndarray,
               batch: int, seed: int, shuffle: bool):
    self._path, self._dtype, self._n_tokens = path, dtype, n_tokens
    self._offsets = np.arange(seq_len + 1)
    self._seq_len, self._windows, self._batch = seq_len, windows, batch
    self._seed, self._shuffle = seed, shuffle
    self.batches_per_epoch = len(windows) // batch
    self._ids = None
    self._order = (None, windows)  # (epoch, window order); replaced whole, so thread-safe

  def _epoch_order(self, epoch: int) -> np.ndarray:
    cached_epoch, order = self._order
    if cached_epoch != epoch:
      order = self._windows
      if self._shuffle:
        order = order[np.random.default_rng([self._seed, epoch]).permutation(len(order))]
      self._order = (epoch, order)
    return order

  def __call__(self, b: int) -> dict[str, np.ndarray]:
    if self._ids is None:
      self._ids = np.memmap(self._path, dtype=self._dtype, mode="r", shape=(self._n_tokens,))
    epoch, i = divmod(int(b), self.batches_per_epoch)
    windows = self._epoch_order(epoch)[i * self._batch:(i + 1) * self._batch]
    rows = self._ids[windows[:, None] * self._seq_len + self._offsets].astype(np.int32)
    return {"inputs": rows[:, :-1], "targets": rows[:, 1:]}

  def __getstate__(self):
    return {**self.__dict__, "_ids": None}


@dataclasses.dataclass
class Loader:
  """An iterator of local batches {"inputs", "targets"}: int32 [local_batch_size, seq_len].

  local_batch_size = global_batch_size // process_count. `save_args()` / `restore_args()` are the
  orbax CheckpointArgs of the iterator state (grain.checkpoint.CheckpointSave/Restore).
  """

  iterator: Any  # grain DatasetIterator
  tokens: tokens_lib.TokenSet
  split: str
  seq_len: int
  local_batch_size: int
  n_windows: int  # windows of this process per epoch
  sample: np.ndarray  # the split's windows read by all processes (window w starts at token
  #                     w * seq_len of the split); process p of P reads sample[p::P], in order

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self.iterator

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self.iterator)

  @property
  def vocab_size(self) -> int:
    return self.tokens.vocab_size

  @property
  def batches_per_epoch(self) -> int:
    return self.n_windows // self.local_batch_size

  def get_state(self) -> dict[str, Any]:
    return self.iterator.get_state()

  def set_state(self, state: dict[str, Any]) -> None:
    self.iterator.set_state(state)

  def save_args(self) -> grain.checkpoint.CheckpointSave:
    return grain.checkpoint.CheckpointSave(self.iterator)

  def restore_args(self) -> grain.checkpoint.CheckpointRestore:
    return grain.checkpoint.CheckpointRestore(self.iterator)


def make_loader(data_cfg: Mapping[str, Any], *, seq_len: int, global_batch_size: int, seed: int,
                process_index: int | None = None, process_count: int | None = None,
                split: str = "train", model_vocab_size: int | None = None,
                heldout_windows: int = 0) -> Loader:
  """Builds (or finds cached) the token files of `data_cfg` and a batch iterator over `split`.

  Args:
    data_cfg: the config's data section (see tokens.DataSpec for the fields read, plus
      num_threads: reader threads, prefetch: batches buffered ahead).
    seq_len: tokens per example; each example reads seq_len+1 tokens.
    global_batch_size: examples per step over all processes; divisible by process_count.
    seed: shuffle seed (train split).
    process_index, process_count: this process's shard; default jax.process_index()/count().
    split: "train" (shuffled, repeats forever) or "heldout" (one pass, in order).
    model_vocab_size: the model's vocabulary; ValueError if the tokens' vocabulary exceeds it.
    heldout_windows: held-out split only: read this many windows spread evenly over the whole
      split (a fixed sample, the same for every run); 0 = every window.
  Returns:
    a Loader (iterator of int32 [global_batch_size // process_count, seq_len] pairs).
  """
  if process_index is None or process_count is None:
    import jax

    process_index, process_count = jax.process_index(), jax.process_count()
  if seq_len < 1 or global_batch_size < 1:
    raise UserError(f"seq_len={seq_len} and global_batch_size={global_batch_size} must be >= 1")
  if global_batch_size % process_count:
    raise UserError(f"global_batch_size={global_batch_size} is not divisible by "
                     f"process_count={process_count}; make it a multiple")
  if split not in tokens_lib.SPLITS:
    raise UserError(f"split={split!r} is unknown; use one of {tokens_lib.SPLITS}")
  toks = tokens_lib.build(tokens_lib.DataSpec.from_config(data_cfg))
  if model_vocab_size is not None and toks.vocab_size > model_vocab_size:
    raise UserError(
        f"the data's vocabulary ({toks.vocab_size} ids, tokenizer {toks.meta.get('tokenizer')!r})"
        f" exceeds the model's vocab_size={model_vocab_size}: token ids up to "
        f"{toks.vocab_size - 1} would index past the embedding; set data.vocab_size <= "
        f"{model_vocab_size} or give the model vocab_size >= {toks.vocab_size}")
  local_batch = global_batch_size // process_count
  n_windows = (toks.n_tokens(split) - 1) // seq_len
  sample = np.arange(max(n_windows, 0))
  if split == "heldout" and 0 < heldout_windows < n_windows:
    sample = np.unique(np.linspace(0, n_windows - 1, heldout_windows).round().astype(np.int64))
  windows = sample[process_index::process_count]
  if len(windows) < local_batch:
    raise UserError(
        f"the {split} split has {toks.n_tokens(split):,} tokens: {max(n_windows, 0)} windows of "
        f"seq_len+1={seq_len + 1}, {len(windows)} for process {process_index} of "
        f"{process_count}, fewer than one local batch of {local_batch}; add text, lower seq_len "
        "or the batch size, or raise data.heldout_fraction (held-out split)")
  train = split == "train"
  reader = BatchReader(toks.path(split), toks.meta["dtype"], toks.n_tokens(split), seq_len,
                       windows, local_batch, seed, shuffle=train)
  ds = grain.MapDataset.range(sys.maxsize if train else reader.batches_per_epoch).map(reader)
  read = grain.ReadOptions(num_threads=int(data_cfg.get("num_threads", 2)),
                           prefetch_buffer_size=int(data_cfg.get("prefetch", 4)))
  it = iter(ds.to_iter_dataset(read))
  return Loader(it, toks, split, seq_len, local_batch, len(windows), sample)
