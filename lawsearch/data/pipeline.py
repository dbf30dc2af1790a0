"""The grain input pipeline: shuffled windows of seq_len+1 tokens -> {"inputs", "targets"} batches.

Window w of a split is tokens[w*seq_len : w*seq_len + seq_len + 1] (consecutive windows share one
token), read at random from a memory-mapped token file. Process p of P takes windows p, p+P, ...
(disjoint across processes), shuffles them with `seed` (a new order every epoch), and batches
global_batch_size/P of them. Batches are assembled in background threads and prefetched.

The train split repeats forever; the held-out split is one pass in file order (for evaluation).
The iterator's position is saved with a checkpoint through grain's orbax handler:

    mngr.save(step, args=ocp.args.Composite(state=..., data=loader.save_args()))
    mngr.restore(step, args=ocp.args.Composite(state=..., data=loader.restore_args()))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator, Mapping

import grain
import grain.checkpoint
import numpy as np

from lawsearch.data import tokens as tokens_lib


class WindowSource:
  """Random access to windows of `window` tokens: source[w] = ids[w*stride : w*stride + window].

  Opens the memory map lazily, so it pickles cheaply (for grain worker processes).
  """

  def __init__(self, path: Path, dtype: str, n_tokens: int, stride: int):
    self._path, self._dtype, self._n = path, dtype, n_tokens
    self._stride = stride
    self._ids = None

  def __len__(self) -> int:
    return (self._n - 1) // self._stride

  def __getitem__(self, w: int) -> np.ndarray:
    if self._ids is None:
      self._ids = np.memmap(self._path, dtype=self._dtype, mode="r", shape=(self._n,))
    start = w * self._stride
    return np.asarray(self._ids[start:start + self._stride + 1], dtype=np.int32)

  def __getstate__(self):
    return {**self.__dict__, "_ids": None}


def split_window(batch: np.ndarray) -> dict[str, np.ndarray]:
  """[B, seq_len+1] int32 -> {"inputs": [B, seq_len], "targets": [B, seq_len]} (shifted by one)."""
  return {"inputs": batch[:, :-1], "targets": batch[:, 1:]}


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
                split: str = "train", model_vocab_size: int | None = None) -> Loader:
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
  Returns:
    a Loader (iterator of int32 [global_batch_size // process_count, seq_len] pairs).
  """
  if process_index is None or process_count is None:
    import jax

    process_index, process_count = jax.process_index(), jax.process_count()
  if seq_len < 1 or global_batch_size < 1:
    raise ValueError(f"seq_len={seq_len} and global_batch_size={global_batch_size} must be >= 1")
  if global_batch_size % process_count:
    raise ValueError(f"global_batch_size={global_batch_size} is not divisible by "
                     f"process_count={process_count}; make it a multiple")
  if split not in tokens_lib.SPLITS:
    raise ValueError(f"split={split!r} is unknown; use one of {tokens_lib.SPLITS}")
  toks = tokens_lib.build(tokens_lib.DataSpec.from_config(data_cfg))
  if model_vocab_size is not None and toks.vocab_size > model_vocab_size:
    raise ValueError(
        f"the data's vocabulary ({toks.vocab_size} ids, tokenizer {toks.meta.get('tokenizer')!r})"
        f" exceeds the model's vocab_size={model_vocab_size}: token ids up to "
        f"{toks.vocab_size - 1} would index past the embedding; set data.vocab_size <= "
        f"{model_vocab_size} or give the model vocab_size >= {toks.vocab_size}")
  local_batch = global_batch_size // process_count
  source = WindowSource(toks.path(split), toks.meta["dtype"], toks.n_tokens(split), seq_len)
  n_local = len(range(process_index, len(source), process_count))
  if n_local < local_batch:
    raise ValueError(
        f"the {split} split has {toks.n_tokens(split):,} tokens: {len(source)} windows of "
        f"seq_len+1={seq_len + 1}, {n_local} for process {process_index} of {process_count}, "
        f"fewer than one local batch of {local_batch}; add text, lower seq_len or the batch "
        "size, or raise data.heldout_fraction (held-out split)")
  ds = grain.MapDataset.source(source)[process_index::process_count]
  if split == "train":
    ds = ds.shuffle(seed=seed).repeat()
  ds = ds.batch(local_batch, drop_remainder=True).map(split_window)
  read = grain.ReadOptions(num_threads=int(data_cfg.get("num_threads", 2)),
                           prefetch_buffer_size=int(data_cfg.get("prefetch", 4)))
  it = iter(ds.to_iter_dataset(read))
  return Loader(it, toks, split, seq_len, local_batch, n_local)
