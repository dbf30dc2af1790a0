"""lawsearch.report.fit_report and `lawsearch report`: a Markdown report of a fitted law."""

import os

import pytest

from lawsearch import cli
from lawsearch.laws import ConditionalLaw, synthetic_sweep


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
  root = tmp_path_factory.mktemp("report")
  df = synthetic_sweep(scales=("80M", "145M"), seed=2)
  df.to_csv(root / "runs.csv", index=False)
  law = ConditionalLaw.fit(df, "multiplicative")
  law.to_json(root / "law.json")
  return root, law, df


def test_report_holds_the_law_its_plots_validation_and_best_runs(fitted, tmp_path, capsys):
  root, law, df = fitted
  out = tmp_path / "rep"
  assert cli.main(["report", "--runs", str(root / "runs.csv"), "--law", str(root / "law.json"),
                   "--out", str(out)]) == 0
  text = (out / "report.md").read_text()
  x_star, r_star = law.optimum()
  assert f"d/sqrt(N) = {x_star:.4g}, r = {r_star:.4g}" in text
  for name, value in law.coefficients.items():
    assert f"| {name} | {value:.4g} |" in text
  for image in ("u_curves.png", "contours.png", "predicted_vs_measured.png"):
    assert f"]({image})" in text and os.path.getsize(out / image) > 20_000
  assert "| 80M -> 145M |" in text  # the cross-scale validation table
  for scale in ("80M", "145M"):  # each scale's best run heads its rows
    best = df[df["scale"] == scale].nsmallest(1, "loss").iloc[0]
    assert f"| {int(best['n_params'])} | {int(best['d_model'])} |" in text
  assert "wrote" in capsys.readouterr().out


def test_report_without_a_law_file_exits_2(fitted, tmp_path, capsys):
  root, _, _ = fitted
  assert cli.main(["report", "--runs", str(root / "runs.csv"), "--law", str(tmp_path / "no.json"),
                   "--out", str(tmp_path)]) == 2
  assert "lawsearch fit --out" in capsys.readouterr().err
