"""The examples in the light modules' docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import lawsearch.laws

LIGHT = ["lawsearch.arch", "lawsearch.cost", "lawsearch.search", "lawsearch.recipe",
         "lawsearch.rundir", "lawsearch.runs", "lawsearch.table", "lawsearch.laws",
         *(f"lawsearch.laws.{m.name}" for m in pkgutil.iter_modules(lawsearch.laws.__path__))]


def test_doctests_pass():
  failed, attempted = [], 0
  for name in LIGHT:
    result = doctest.testmod(importlib.import_module(name))
    attempted += result.attempted
    failed += [f"{name}: {result.failed} of {result.attempted}"] if result.failed else []
  assert failed == [], ("doctests failed (doctest's report is in the captured stdout):\n"
                        + "\n".join(failed))
  assert attempted >= 1, "no doctest example ran: the light modules' docstrings lost theirs"
