"""A disk that turns read-only mid-run, for the tests: a Python process started with this folder
on PYTHONPATH and LAWSEARCH_TEST_READ_ONLY_AT_STEP=N remounts the filesystem mounted at
$LAWSEARCH_TEST_MOUNT read-only right after training step N (and that step's checkpoint)."""

import os
import subprocess

if os.environ.get("LAWSEARCH_TEST_READ_ONLY_AT_STEP"):
  from lawsearch.train import loop  # pylint: disable=import-outside-toplevel

  def _read_only(step: int, checkpointer) -> None:
    if str(step) == os.environ["LAWSEARCH_TEST_READ_ONLY_AT_STEP"]:
      if checkpointer is not None:
        checkpointer.wait()
      subprocess.run(["mount", "-o", "remount,ro", os.environ["LAWSEARCH_TEST_MOUNT"]],
                     check=True)

  loop.STEP_CALLBACKS.append(_read_only)
