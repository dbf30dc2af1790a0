"""A crash mid-run for the tests: a Python process started with this folder on PYTHONPATH and
LAWSEARCH_TEST_KILL_AT_STEP=N SIGKILLs itself right after training step N, once that step's
checkpoint (if any) is on disk (`crashing.at_step(N)` builds that environment)."""

import os

if os.environ.get("LAWSEARCH_TEST_KILL_AT_STEP"):
  from lawsearch.train import loop  # pylint: disable=import-outside-toplevel

  def _kill(step: int, checkpointer) -> None:
    if str(step) == os.environ["LAWSEARCH_TEST_KILL_AT_STEP"]:
      if checkpointer is not None:
        checkpointer.wait()
      os.kill(os.getpid(), 9)

  loop.STEP_CALLBACKS.append(_kill)
