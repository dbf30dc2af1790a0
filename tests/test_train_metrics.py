"""The held-out loss's standard error: a block bootstrap against closed forms."""

import numpy as np

from lawsearch.laws.noise import block_bootstrap_se
from lawsearch.train.metrics import block_means


def _se(values, blocks):
  _, means, counts = block_means(values, blocks)
  return block_bootstrap_se(means, counts)


def test_independent_values_give_the_textbook_standard_error():
  values = np.random.default_rng(1).normal(3.0, 0.5, 4000)
  se = _se(values, np.arange(len(values)))
  assert abs(se / (values.std(ddof=1) / np.sqrt(len(values))) - 1) < 0.06


def test_correlated_blocks_count_once_each():
  # 200 blocks of 32 identical windows: the sample holds 200 independent values, not 6,400.
  block_values = np.random.default_rng(2).normal(3.0, 0.5, 200)
  values, blocks = np.repeat(block_values, 32), np.repeat(np.arange(200), 32)
  se = _se(values, blocks)
  assert abs(se / (block_values.std(ddof=1) / np.sqrt(200)) - 1) < 0.06
  assert se > 4 * _se(values, np.arange(len(values)))  # ignoring the blocks: far too small


def test_block_means_weigh_blocks_by_their_windows():
  ids, means, counts = block_means([1.0, 3.0, 5.0, 10.0], [7, 7, 7, 2])
  assert ids.tolist() == [2, 7] and means.tolist() == [10.0, 3.0] and counts.tolist() == [1, 3]
  assert block_bootstrap_se([4.0], [3]) == 0.0  # one block: no spread to resample
