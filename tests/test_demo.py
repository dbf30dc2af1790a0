"""The demo's data: the runs table and hardware shipped with the package are committed replication
v2's, its rows are what the committed run records give, and the demo's law fitted on them is the
committed law."""

import io
import os

import numpy as np
import pandas as pd
import pytest

from lawsearch import demo
from lawsearch.laws import ConditionalLaw

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
COMMITTED = os.path.join(ROOT, "experiments", "results", demo.SHIPPED)
SHIPPED = os.path.join(demo.RESULTS, "runs.csv")
pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(COMMITTED, "fit")),
                                reason=f"no committed CPU replication under {COMMITTED}")


def test_the_shipped_table_is_what_the_committed_records_give(monkeypatch):
  monkeypatch.syspath_prepend(os.path.join(ROOT, "experiments", "cpu_replication"))
  import replication  # pylint: disable=import-outside-toplevel

  # The package ships the committed runs.csv and hardware.json, byte for byte.
  for name in ("runs.csv", "hardware.json"):
    with open(os.path.join(demo.RESULTS, name)) as f, open(os.path.join(COMMITTED, name)) as g:
      assert f.read() == g.read(), name
  # Every row of it is the experiment's table stage on the committed run records (records of
  # runs that finished after the last table stage may be committed ahead of it; at their scale a
  # new best run moves every run's paired_se, its difference from the scale's best).
  built = replication.runs_table(COMMITTED).set_index("run")
  shipped = pd.read_csv(SHIPPED).set_index("run")
  assert set(shipped.index) <= set(built.index)
  as_text = built.loc[shipped.index].reset_index().to_csv(index=False,
                                                          float_format=replication.CSV_FLOAT)
  rebuilt = pd.read_csv(io.StringIO(as_text)).set_index("run")
  grown = set(built.loc[~built.index.isin(shipped.index), "scale"])
  moved = shipped["scale"].isin(grown)
  for table in (rebuilt, shipped):
    table.loc[moved, "paired_se"] = np.nan
  pd.testing.assert_frame_equal(rebuilt, shipped)


def test_the_demos_law_on_the_shipped_table_is_the_committed_law():
  """The demo's defaults (L_opt joint, r in [0.5, 5]) are the committed fit's; the law's optimum
  and every form are checked by tests/test_cpu_replication.py."""
  table = pd.read_csv(SHIPPED)
  law = demo.fit_law(table).law
  committed = ConditionalLaw.from_json(os.path.join(COMMITTED, "law_multiplicative.json"))
  assert law.fit_info.n_points == committed.fit_info.n_points
  assert law.fit_info.l_opt == committed.fit_info.l_opt
  # The same law to the fit's tolerance: the same predictions relative to L_opt on every fitting
  # run (coefficients have a scale gauge).
  fitting = demo.fitting_runs(table)
  x, r = fitting["d_over_sqrt_n"].to_numpy(), fitting["mlp_attn_ratio"].to_numpy()
  np.testing.assert_allclose(law.predict_xr(x, r, 1.0), committed.predict_xr(x, r, 1.0),
                             rtol=1e-5)
