"""`lawsearch fit`: a results table in, coefficients, validation and a law JSON out."""

import pandas as pd
import pytest

from lawsearch import cli
from lawsearch.laws import ConditionalLaw, synthetic_sweep
from lawsearch.rundir import RunDir


@pytest.fixture(scope="module")
def results_csv(tmp_path_factory):
  path = tmp_path_factory.mktemp("fit") / "results.csv"
  synthetic_sweep(scales=("80M", "145M"), seed=4).to_csv(path, index=False)
  return path


def test_fit_writes_a_law_and_prints_validation(results_csv, tmp_path, capsys):
  out = tmp_path / "law.json"
  assert cli.main(["fit", "--runs", str(results_csv), "--bootstrap", "0", "--out", str(out),
                   "--plots", str(tmp_path / "plots")]) == 0
  text = capsys.readouterr().out
  assert "80M -> 145M" in text and "optimum: d/sqrt(N)" in text
  assert {p.name for p in (tmp_path / "plots").iterdir()} == {
      "u_curves.png", "contours.png", "predicted_vs_measured.png"}
  law = ConditionalLaw.from_json(out)
  assert law.form == "multiplicative" and law.fit_info.l_opt == "empirical"


@pytest.mark.parametrize("argv, match", [
    (["--runs", "missing.csv"], "no such file"),
    (["--runs", "results.txt"], "not a run directory nor a table file"),
    (["--l-opt", "best"], "--l-opt: L_opt 'best'"),
])
def test_bad_input_exits_2_with_one_line(results_csv, capsys, argv, match):
  argv = ["fit", "--runs", str(results_csv), *argv] if argv[0] != "--runs" else ["fit", *argv]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert match in err and err.count("\n") == 1


def test_too_few_runs_exits_2(results_csv, tmp_path, capsys):
  small = tmp_path / "small.csv"
  small.write_text("".join(results_csv.read_text().splitlines(keepends=True)[:5]))
  assert cli.main(["fit", "--runs", str(small), "--bootstrap", "0"]) == 2
  assert "4 point(s)" in capsys.readouterr().err


def test_a_scale_too_small_to_validate_still_writes_the_law(tmp_path, capsys):
  # 3 runs at 80M cannot be fitted alone (6 coefficients): validation is skipped, the law stands.
  df = synthetic_sweep(scales=("80M", "145M"), seed=4)
  df = df[df["mlp_attn_ratio"].between(0.5, 5.0)]
  few = df[df["scale"] == "80M"].head(3)
  path = tmp_path / "few.csv"
  pd.concat([few, df[df["scale"] == "145M"]]).to_csv(path, index=False)
  out = tmp_path / "law.json"
  assert cli.main(["fit", "--runs", str(path), "--bootstrap", "0", "--out", str(out)]) == 0
  text = capsys.readouterr().out
  assert "validation skipped: task 80M -> 145M:" in text and "3 point(s)" in text
  assert ConditionalLaw.from_json(out).fit_info.n_points == 3 + (df["scale"] == "145M").sum()


def test_a_run_directory_with_unfinished_runs_says_they_are_left_out(tmp_path, capsys):
  from lawsearch import runs

  for i, row in enumerate(synthetic_sweep(scales=("80M",), seed=5).to_dict("records")):
    runs.write_result(tmp_path / f"run{i}", row)
  (tmp_path / "pending").mkdir()
  (tmp_path / "pending" / RunDir.CONFIG).write_text("{}")
  assert cli.main(["fit", "--runs", str(tmp_path), "--bootstrap", "0", "--no-validate"]) == 0
  out = capsys.readouterr().out
  assert "note: 1 run(s) under" in out and out.split("\n")[0].endswith("left out: pending")


def test_fit_takes_the_decaying_form_and_draws_it(tmp_path, capsys):
  truth = ConditionalLaw("decaying", (0.0, 0.3, 0.025, 0.05, 0.06, 0.5))
  path = tmp_path / "results.csv"
  runs = synthetic_sweep(truth, scales=("80M", "145M", "297M"), seed=4, noise=0.001)
  runs.assign(l_opt=runs["l_opt_true"]).to_csv(path, index=False)  # the true L_opt per run
  out = tmp_path / "law.json"
  assert cli.main(["fit", "--runs", str(path), "--form", "decaying", "--l-opt", "empirical"]) == 2
  assert "use l_opt='joint'" in capsys.readouterr().err
  assert cli.main(["fit", "--runs", str(path), "--form", "decaying", "--l-opt", "column",
                   "--bootstrap", "0", "--out", str(out), "--plots", str(tmp_path / "plots")]) == 0
  text = capsys.readouterr().out
  assert "80M+145M -> 297M" in text and "80M -> 145M" not in text  # gamma needs two scales
  law = ConditionalLaw.from_json(out)
  assert law.form == "decaying" and abs(law.coefficients["gamma"] - 0.5) < 0.15
  assert len(list((tmp_path / "plots").iterdir())) == 3


def test_an_optimum_beyond_the_fitted_shapes_is_called_an_extrapolation():
  import dataclasses  # pylint: disable=import-outside-toplevel

  from lawsearch import laws  # pylint: disable=import-outside-toplevel

  sweep = synthetic_sweep(scales=("80M", "145M"), seed=4)  # the paper's law: x* 0.08, r* 1.03
  inside = laws.fit_runs(sweep, validate=False)
  assert inside.optimum_beyond_runs() is None and "  note: " not in inside.summary()
  assert "beyond_runs" not in inside.to_dict()["optimum"]
  # The same fit with its r* moved past the fitted shapes' largest r (the filter's 5 caps it).
  fitted_r = sweep.loc[sweep["mlp_attn_ratio"].between(0.5, 5), "mlp_attn_ratio"]
  beyond = dataclasses.replace(inside, optimum=(inside.optimum[0], 50.0))
  note = beyond.optimum_beyond_runs()
  assert note.startswith(f"r* = 50 lies beyond the fitted shapes' {fitted_r.min():.3g}-"
                         f"{fitted_r.max():.3g}: an extrapolation")
  assert "d/sqrt(N)*" not in note and f"  note: {note}" in beyond.summary()
  assert beyond.to_dict()["optimum"]["beyond_runs"] == note
  # Without the r filter every shape counts; a table without a d/sqrt(N) column works as well.
  unfiltered = laws.fit_runs(sweep.drop(columns=["d_over_sqrt_n"]),
                             r_range=None, validate=False)
  assert unfiltered.optimum_beyond_runs() is None
