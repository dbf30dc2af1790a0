"""Orbax checkpoints of the train state, the data iterator state and the architecture.

Layout: <workdir>/checkpoints/<step>/{state, data, meta}. `meta` records the ArchSpec; restoring
into a run of another architecture, or from an unreadable checkpoint, raises a ValueError that
says what is wrong and what to do.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from lawsearch import paths
from lawsearch.arch import from_fields
from lawsearch.errors import UserError


class _DiskErrorsReportedElsewhere(logging.Filter):
  """Drops orbax's own log records (and asyncio's, of its failed writer tasks) of a full or
  read-only disk: lawsearch reports that error itself, in one line (loop.train)."""

  def filter(self, record: logging.LogRecord) -> bool:
    text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
    return paths.disk_error(Exception(text)) is None


for _name in ("absl", "asyncio"):
  logging.getLogger(_name).addFilter(_DiskErrorsReportedElsewhere())


class Checkpointer:
  """Saves every `every` steps (and on demand), keeping the newest `keep` checkpoints."""

  def __init__(self, directory: str, *, every: int, keep: int, meta: dict[str, Any]):
    if every <= 0 or keep <= 0:
      raise UserError(f"checkpoint every={every} and keep={keep} must be positive")
    self.directory = paths.absolute(directory)  # local or gs:// (orbax writes both)
    self.every = every
    self.meta = meta
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, loader=None, *, force: bool = False) -> bool:
    """Save at multiples of `every` (or always with force). Returns whether it saved."""
    if not force and step % self.every:
      return False
    if step == self.manager.latest_step():
      return False
    self._check_space(state)
    items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(self.meta))
    if loader is not None and hasattr(loader, "save_args"):
      items["data"] = loader.save_args()
    return self.manager.save(step, args=ocp.args.Composite(**items), force=True)

  def _check_space(self, state) -> None:
    """An OSError (ENOSPC) naming the sizes before a save that would not fit a local disk: a save
    that runs out of space midway leaves orbax's writers failing in background threads."""
    if paths.is_remote(self.directory):
      return
    need = sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(state)) * 1.05 + (1 << 20)
    free = shutil.disk_usage(self.directory).free
    if need > free:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                    f"{self.directory} (a checkpoint needs about {need / 2**20:,.0f} MiB, "
                    f"{free / 2**20:,.0f} MiB are free)")

  def _refuse(self, step: int, error: Exception):
    raise UserError(
        f"checkpoint {step} in {self.directory} is corrupt or unreadable "
        f"({type(error).__name__}: {str(error)[:300]}); delete that step directory to resume from "
        f"an earlier checkpoint, or start in a fresh --workdir") from error

  def restore(self, abstract_state, loader=None):
    """(state, step) from the newest checkpoint, or None when there is none.

    abstract_state: a tree of jax.ShapeDtypeStruct (with shardings) like the saved state. The
    loader's iterator state is restored in place (grain) when it has `restore_args`.
    """
    step = self.manager.latest_step()
    if step is None:
      return None
    self._check_arch(step)
    items = dict(state=ocp.args.StandardRestore(abstract_state))
    if loader is not None and hasattr(loader, "restore_args"):
      items["data"] = loader.restore_args()
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # pylint: disable=broad-except
      self._refuse(step, e)
    return restored["state"], step

  def _check_arch(self, step: int) -> None:
    try:
      meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except
      self._refuse(step, e)
    saved_arch, arch = meta["meta"].get("arch"), self.meta.get("arch")
    if not _same_shape(saved_arch, arch):
      raise UserError(
          f"checkpoint {step} in {self.directory} holds another architecture: saved {saved_arch}, "
          f"this run {arch}; use a fresh --workdir (or the saved run's config)")

  def restore_params(self, abstract_params, step: int | None = None):
    """(params, step): only the parameters of checkpoint `step` (default the newest), or None
    when there is none. Reads a training checkpoint (TrainState) or an imported one (params
    only, `lawsearch import-hf`). abstract_params: a tree of jax.ShapeDtypeStruct whose shardings
    say where each array goes (any mesh, or one device, whatever mesh saved it)."""
    steps = self.manager.all_steps()
    step = self.manager.latest_step() if step is None else step
    if step is None:
      return None
    if step not in steps:
      raise UserError(f"no checkpoint {step} in {self.directory}; it holds steps "
                      f"{sorted(steps)}")
    self._check_arch(step)
    item = {"params": abstract_params}
    args = ocp.args.PyTreeRestore(item=item, partial_restore=True,
                                  restore_args=ocp.checkpoint_utils.construct_restore_args(item))
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(state=args))
    except Exception as e:  # pylint: disable=broad-except
      self._refuse(step, e)
    return restored["state"]["params"], step

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def _same_shape(saved, current) -> bool:
  """Whether two checkpoints' `arch` metadata describe one shape, whichever ArchSpec fields each
  spells out (a field added to ArchSpec later takes its default in older records)."""
  if saved == current:
    return True
  try:
    return from_fields(saved) == from_fields(current)
  except (TypeError, ValueError, KeyError):  # not a shape at all: refused as another one
    return False
