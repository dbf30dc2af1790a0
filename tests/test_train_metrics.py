"""The held-out loss's standard error: a block bootstrap against closed forms."""

import numpy as np

from lawsearch.train.metrics import block_bootstrap_se


def test_independent_values_give_the_textbook_standard_error():
  values = np.random.default_rng(1).normal(3.0, 0.5, 4000)
  se = block_bootstrap_se(values, np.arange(len(values)))
  assert abs(se / (values.std(ddof=1) / np.sqrt(len(values))) - 1) < 0.06


def test_correlated_blocks_count_once_each():
  # 200 blocks of 32 identical windows: the sample holds 200 independent values, not 6,400.
  rng = np.random.default_rng(2)
  block_means = rng.normal(3.0, 0.5, 200)
  values, blocks = np.repeat(block_means, 32), np.repeat(np.arange(200), 32)
  se = block_bootstrap_se(values, blocks)
  assert abs(se / (block_means.std(ddof=1) / np.sqrt(200)) - 1) < 0.06
  assert se > 4 * block_bootstrap_se(values, np.arange(len(values)))  # ignoring blocks: too small


def test_one_block_has_no_spread():
  assert block_bootstrap_se([1.0, 2.0, 3.0], [7, 7, 7]) == 0.0
