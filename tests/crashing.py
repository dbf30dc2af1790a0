"""The environment of a subprocess that crashes after a given training step (crash_at_step/)."""

import os

HOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_at_step")


def at_step(step: int) -> dict[str, str]:
  """Environment variables (to add to os.environ) that SIGKILL a lawsearch process right after
  training step `step`, its checkpoint written."""
  path = os.pathsep.join(filter(None, [HOOK, os.environ.get("PYTHONPATH", "")]))
  return {"PYTHONPATH": path, "LAWSEARCH_TEST_KILL_AT_STEP": str(step)}
