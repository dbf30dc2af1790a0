"""Held-out loss of a trained run, from its run directory: `lawsearch eval --workdir RUN`.

The run's own config.json rebuilds the model and its data; dotted overrides change what is
evaluated (`--config.data.path=other.txt`, `--config.train.eval_batches=64`). The newest
checkpoint's parameters are restored and `loop.heldout_loss` averages the loss over the run's
fixed held-out sample (`train.eval_batches` batches spread over the split; 0 = all of it), as the
train loop's own evals do, with its block-bootstrap standard error.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import ml_collections

from lawsearch import configlib, inputs, paths
from lawsearch.rundir import RunDir
from lawsearch.errors import UserError
from lawsearch.train import loop


def run_config(workdir: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The config a run was trained with (its config.json), with dotted overrides applied."""
  inputs.argument(workdir, "workdir", "path", "evaluate")
  run = RunDir(workdir)
  if not paths.exists(run.config):
    raise UserError(f"{workdir} is not a run directory (no config.json); pass the --workdir of "
                     "a `lawsearch train` or `lawsearch sweep` run")
  return configlib.locked(ml_collections.ConfigDict(run.read_json(run.config)), overrides)


def restore(workdir: str, overrides: Sequence[str] = ()):
  """(config, program, params, step): the run's config (with `overrides`), its program on this
  process's devices, and the parameters of its newest checkpoint (an imported run's too)."""
  config = run_config(workdir, overrides)
  loop.initialize_distributed(config)
  program = loop.build_program(config)
  ckpt = loop.run_checkpointer(config, workdir)
  try:
    restored = ckpt.restore_params(program.abstract_state.params)
  finally:
    ckpt.close()
  if restored is None:
    raise UserError(f"{workdir} has no checkpoint to evaluate (train it first, with "
                     "train.checkpoint_every > 0)")
  params, step = restored
  return config, program, params, step


@dataclasses.dataclass(frozen=True)
class HeldoutResult:
  """The held-out loss of a run's newest checkpoint: heldout_loss in nats per token, with its
  block-bootstrap standard error; tokens evaluated, and per corpus source ({} without sources)."""

  workdir: str
  step: int  # the checkpoint's training step
  heldout_loss: float
  heldout_loss_se: float
  tokens: int
  sources: dict[str, int]

  def to_dict(self) -> dict:
    """{workdir, step, heldout_loss, heldout_loss_se, tokens, sources}, in that order."""
    return dataclasses.asdict(self)

  def summary(self) -> str:
    """What `lawsearch eval` prints: one line for people, then `to_dict()` as one JSON line."""
    return (f"{self.workdir}: step {self.step}, held-out loss {self.heldout_loss:.5f} +- "
            f"{self.heldout_loss_se:.5f} over {self.tokens:,} tokens\n"
            + json.dumps(self.to_dict()))


def evaluate(workdir: str, overrides: Sequence[str] = ()) -> HeldoutResult:
  """The held-out loss of the newest checkpoint of `workdir`."""
  config, program, params, step = restore(workdir, overrides)
  result = loop.heldout_loss(program, config, params)
  return HeldoutResult(str(workdir), step, result.loss, result.se, result.tokens, result.sources)
