"""Held-out loss of a trained run, from its run directory: `lawsearch eval --workdir RUN`.

The run's own config.json rebuilds the model and its data; dotted overrides change what is
evaluated (`--config.data.path=other.txt`, `--config.train.eval_batches=64`). The newest
checkpoint's parameters are restored and `loop.heldout_loss` averages the loss over
`train.eval_batches` batches of the held-out split, as the train loop's own evals do.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import ml_collections

from lawsearch import configlib, runs
from lawsearch.train import loop


def run_config(workdir: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The config a run was trained with (its config.json), with dotted overrides applied."""
  path = os.path.join(workdir, runs.CONFIG)
  if not os.path.isfile(path):
    raise ValueError(f"{workdir} is not a run directory (no config.json); pass the --workdir of "
                     "a `lawsearch train` or `lawsearch sweep` run")
  with open(path) as f:
    return configlib.locked(ml_collections.ConfigDict(json.load(f)), overrides)


def evaluate(workdir: str, overrides: Sequence[str] = ()) -> dict:
  """{workdir, step, heldout_loss, batches, tokens} for the newest checkpoint of `workdir`."""
  config = run_config(workdir, overrides)
  loop.initialize_distributed(config)
  program = loop.build_program(config)
  ckpt = loop.run_checkpointer(config, workdir)
  try:
    restored = ckpt.restore(program.abstract_state)
  finally:
    ckpt.close()
  if restored is None:
    raise ValueError(f"{workdir} has no checkpoint to evaluate (train it first, with "
                     "train.checkpoint_every > 0)")
  state, step = restored
  t = config.train
  return {"workdir": workdir, "step": step,
          "heldout_loss": loop.heldout_loss(program, config, state.params),
          "batches": t.eval_batches, "tokens": t.eval_batches * t.batch_size * t.seq_len}
