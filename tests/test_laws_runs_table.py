"""The runs table as the fitters take it (lawsearch.laws.runs_table.RunsTable): checked once when
built, every stage of a fit and of a report taking it already checked, bad values and missing
columns named."""

import numpy as np
import pytest

from lawsearch import laws
from lawsearch.errors import UserError
from lawsearch.laws.runs_table import RunsTable
from lawsearch.report import fit_report


@pytest.fixture(scope="module")
def sweep():
  return laws.synthetic_sweep(noise=0.01, seeds=2, seed=3)


@pytest.fixture
def checks(monkeypatch):
  """The number of times a DataFrame is checked into a RunsTable (a RunsTable passes free)."""
  calls = []
  original = RunsTable.of.__func__

  def counting(cls, df, what="a runs table"):
    if not isinstance(df, RunsTable):
      calls.append(what)
    return original(cls, df, what)

  monkeypatch.setattr(RunsTable, "of", classmethod(counting))
  return calls


def test_a_fit_checks_its_table_once(sweep, checks):
  summary = laws.fit_runs(sweep, l_opt="joint", n_boot=8, validate=True)
  assert summary.assessment.validation is not None and summary.lack_of_fit is not None
  assert checks == ["laws.fit_runs"]


def test_a_report_checks_its_table_once(sweep, checks, tmp_path):
  law = laws.fit_runs(sweep, validate=False).law
  checks.clear()
  fit_report.write(law, sweep, str(tmp_path))
  assert checks == ["the report"] and (tmp_path / "report.md").exists()


def test_the_checked_table_gives_the_law_its_variables(sweep):
  table = RunsTable.of(sweep)
  np.testing.assert_allclose(table.x, sweep["d_model"] / np.sqrt(sweep["n_params"]))
  np.testing.assert_array_equal(table.r, sweep["mlp_attn_ratio"])
  assert list(table.scale) == list(sweep["scale"])
  derived = RunsTable.of(sweep.drop(columns="scale")).scale  # from n_params and tokens
  assert len(set(derived)) == sweep["scale"].nunique()
  assert RunsTable.of(table) is table
  small = table.rows(table.loss < np.median(table.loss))
  assert isinstance(small, RunsTable)
  assert len(small) == int((sweep["loss"] < sweep["loss"].median()).sum())


def test_bad_values_and_missing_columns_are_named(sweep):
  with pytest.raises(UserError, match=r"loss: 1 NaN.*row 3"):
    RunsTable.of(sweep.assign(loss=np.where(np.arange(len(sweep)) == 3, np.nan, sweep["loss"])))
  with pytest.raises(UserError, match="l_opt: .*non-positive"):
    RunsTable.of(sweep).assign(l_opt=np.zeros(len(sweep)))
  bare = RunsTable.of(sweep.drop(columns=["tokens", "scale"], errors="ignore"))
  with pytest.raises(UserError, match=r"scales: missing column\(s\) \['tokens'\]"):
    _ = bare.scale
  with pytest.raises(UserError, match="needs a pandas DataFrame, got list"):
    RunsTable.of([1, 2])
