"""The demo's data: the runs table and hardware shipped with the package are the committed CPU
replication's, and the demo's law fitted on them is the committed law."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from lawsearch import demo
from lawsearch.laws import ConditionalLaw

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
COMMITTED = os.path.join(ROOT, "experiments", "results", "cpu_replication")
SHIPPED = os.path.join(demo.RESULTS, "runs.csv")
pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(COMMITTED, "fit")),
                                reason=f"no committed CPU replication under {COMMITTED}")


def test_the_shipped_table_is_what_the_committed_records_give(monkeypatch):
  monkeypatch.syspath_prepend(os.path.join(ROOT, "experiments", "cpu_replication"))
  import replication  # pylint: disable=import-outside-toplevel

  # The experiment's table stage on the committed run records, as text: the same file.
  built = replication.runs_table(COMMITTED).to_csv(index=False,
                                                   float_format=replication.CSV_FLOAT)
  with open(SHIPPED) as f:
    assert built == f.read()
  # The committed runs.csv agrees on its columns (written before records gave batch_size).
  committed = pd.read_csv(os.path.join(COMMITTED, "runs.csv"))
  pd.testing.assert_frame_equal(pd.read_csv(SHIPPED)[committed.columns], committed)
  with open(os.path.join(demo.RESULTS, "hardware.json")) as f, \
       open(os.path.join(COMMITTED, "hardware.json")) as g:
    assert json.load(f) == json.load(g)


def test_the_demos_law_on_the_shipped_table_is_the_committed_law():
  table = pd.read_csv(SHIPPED)
  law = demo.fit_law(table).law
  committed = ConditionalLaw.from_json(os.path.join(COMMITTED, "law_multiplicative.json"))
  fitting = demo.fitting_runs(table)
  assert law.fit_info.n_points == committed.fit_info.n_points
  # The same law to the fit's tolerance: the same predictions on every run (coefficients have a
  # scale gauge) and the same optimum.
  np.testing.assert_allclose(law.predict(fitting, "empirical"),
                             committed.predict(fitting, "empirical"), rtol=1e-5)
  np.testing.assert_allclose(law.optimum(), committed.optimum(), rtol=1e-4)
