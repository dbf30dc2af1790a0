"""The conditional law for mixtures of experts (lawsearch.laws.forms' MoE forms): each form is the
dense law at E = 1 and its sparsity factor a hand-written closed form; fits recover the law that
drew a synthetic MoE sweep, agree with scipy on the same least squares, carry through fit_runs
(seeds, bootstrap, joint L_opt); a table that cannot determine a factor is refused by name."""

import dataclasses
import math
import os

import numpy as np
import pytest
from scipy.optimize import least_squares

from lawsearch import laws
from lawsearch.errors import UserError
from lawsearch.laws import forms
from lawsearch.laws.conditional import ConditionalLaw
from lawsearch.laws.runs_table import RunsTable

DENSE = ConditionalLaw.paper("80m-297m").params
SETTINGS = ((4, 1, 1), (8, 1, 1), (16, 1, 1), (8, 2, 2), (16, 2, 2), (16, 4, 4))
TRUE = {"moe-power": (0.03,), "moe-granularity": (0.03, 0.04, 1.0),
        "moe-leverage": (0.02, 0.01, -0.003), "moe-saturating": (0.03, 0.05 ** 0.5)}


def sweep(form, **kw):
  law = ConditionalLaw(form, DENSE + TRUE[form])
  return law, laws.synthetic_sweep(law, sparsity=SETTINGS, noise=0.002, seed=1,
                                   scales=("80M", "145M"), **kw)


@pytest.mark.parametrize("form", forms.MOE_FORMS)
def test_every_moe_form_is_the_dense_law_at_one_expert(form):
  law, dense = ConditionalLaw(form, DENSE + TRUE[form]), ConditionalLaw("multiplicative", DENSE)
  x, r = np.array([0.05, 0.1, 0.2]), np.array([0.8, 1.0, 3.0])
  want = np.asarray(dense.predict_xr(x, r, 3.0))
  np.testing.assert_allclose(law.predict_xr(x, r, 3.0, np.ones((3, 3))), want, rtol=1e-12)
  np.testing.assert_allclose(law.predict_xr(x, r, 3.0), want, rtol=1e-12)  # no sparsity: dense
  assert law.optimum() == pytest.approx(dense.optimum())


def test_sparsity_factors_match_their_closed_forms():
  with laws.float64():
    dense = float(ConditionalLaw("multiplicative", DENSE).predict_xr(0.1, 1.0, 3.0))
  e, k, g = 16.0, 2.0, 2.0
  factor = {"moe-power": math.exp(-0.03 * math.log(16)),
            "moe-granularity": math.exp(-(0.03 * math.log(16) - 0.04 * (2 ** -1.0 - 1))),
            "moe-leverage": math.exp(-(0.02 * math.log(8) + 0.01 * math.log(2)
                                       - 0.003 * math.log(2) ** 2)),
            # Clark et al.'s transformed count with E_start = 1, E_max = 1 / 0.05 = 20
            "moe-saturating": (1 / (1 / (16 - 1 + 1 / (1 / 1 - 1 / 20)) + 1 / 20)) ** -0.03}
  for form, want in factor.items():
    with laws.float64():
      got = float(ConditionalLaw(form, DENSE + TRUE[form]).predict_xr(0.1, 1.0, 3.0, [e, k, g]))
    assert got == pytest.approx(dense * want, rel=1e-12)


@pytest.mark.parametrize("form", forms.MOE_FORMS)
def test_a_fit_recovers_the_law_that_drew_the_sweep(form):
  truth, df = sweep(form)
  law = ConditionalLaw.fit(df, form)
  fitted = dict(zip(forms.FORMS[form].sparsity_names, law.params[6:]))
  if form == "moe-saturating":  # w enters as w^2 = 1 / E_max: its sign is not identified
    fitted["w"] = abs(fitted["w"])
  for name, value in zip(forms.FORMS[form].sparsity_names, TRUE[form]):
    assert fitted[name] == pytest.approx(value, abs=0.15 * abs(value) + 0.002), name
  assert law.optimum() == pytest.approx(truth.optimum(), rel=0.1)


def test_saturation_the_runs_do_not_show_is_fitted_at_its_boundary_as_moe_power():
  # Runs whose 16-expert gain exceeds a power of E (as on the CPU sweep) pull 1/E_max below 0;
  # moe-saturating keeps it at w^2 >= 0, so its optimum is the boundary w = 0: the fit converges
  # there (the start that sits on it) and equals moe-power.
  _, df = sweep("moe-power")
  df = df.assign(loss=df["loss"] * np.where(df["n_experts"] == 16, np.exp(-0.01), 1.0))
  power, saturating = (ConditionalLaw.fit(df, form) for form in ("moe-power", "moe-saturating"))
  assert saturating.coefficients["w"] == 0.0
  assert saturating.fit_info.objective == pytest.approx(power.fit_info.objective, rel=1e-9)
  assert saturating.coefficients["e"] == pytest.approx(power.coefficients["e"], rel=1e-6)


def test_the_fit_agrees_with_scipy_least_squares():
  _, df = sweep("moe-leverage")
  law = ConditionalLaw.fit(df, "moe-leverage")
  table = RunsTable.of(df)
  keep = (table.r >= 0.5) & (table.r <= 5.0)  # the fit's default r filter
  x, r, s, loss = table.x[keep], table.r[keep], table.sparsity[keep], table.loss[keep]
  l_opt = laws.l_opt.for_table(table, "empirical")[keep]
  spec = forms.FORMS["moe-leverage"]

  def residual(free):
    theta = np.insert(free, 3, 1.0)  # the gauge b0 = 1
    with laws.float64():
      return np.asarray(spec.fn(theta, x, r, l_opt, s)) - loss

  start = np.delete(np.asarray(law.params), 3) * 1.05
  ref = least_squares(residual, start, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
  assert law.fit_info.objective == pytest.approx(float(np.sum(ref.fun ** 2)), rel=1e-6)
  np.testing.assert_allclose(np.delete(law.params, 3), ref.x, rtol=1e-3, atol=1e-6)


def test_fit_runs_takes_a_moe_form_with_seeds_bootstrap_and_joint_levels():
  _, df = sweep("moe-leverage", seeds=2)
  summary = laws.fit_runs(df, "moe-leverage", l_opt="joint", n_boot=16, validate=False)
  names = summary.coefficients["coefficient"].tolist()
  assert names[-3:] == ["e", "g1", "g2"] and {"low", "high"} <= set(summary.coefficients)
  assert summary.lack_of_fit is not None and summary.optimum is not None
  assert "moe-leverage law" in summary.summary()


def test_a_table_that_cannot_determine_the_factor_is_refused_by_name():
  dense = laws.synthetic_sweep(scales=("80M",))
  with pytest.raises(UserError, match=r"moe-power form's sparsity factor \(e\) needs runs at more "
                                      r"than 1 .*add MoE runs"):
    ConditionalLaw.fit(dense, "moe-power")
  _, one_g = sweep("moe-power")
  one_g = one_g[one_g["top_k"] <= 1]  # granularity 1 only
  with pytest.raises(UserError, match="three granularities"):
    ConditionalLaw.fit(one_g, "moe-leverage")


def test_the_runs_table_reads_sparsity_and_active_size_from_run_records():
  _, df = sweep("moe-power")
  table = RunsTable.of(df.assign(n_active=df["n_params"], n_params=df["n_params"] * 3))
  s = table.sparsity
  assert s[df["n_experts"] == 0].tolist() == [[1.0, 1.0, 1.0]] * int((df["n_experts"] == 0).sum())
  row = int(np.flatnonzero((df["n_experts"] == 16) & (df["top_k"] == 4))[0])
  assert s[row].tolist() == [16.0, 4.0, pytest.approx(4.0, rel=1e-9)]
  np.testing.assert_allclose(table.x, df["d_model"] / np.sqrt(df["n_params"]))  # active N


def test_committed_moe_runs_share_one_active_scale():
  from lawsearch import runs  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel

  root = Path(__file__).parent.parent / "experiments/results/moe_cpu/trained"
  table = RunsTable.of(runs.read_table(str(root)))
  assert len(set(table.scale)) == 1  # 80.9k dense, 121k and 202k total: one active size
  assert sorted({tuple(s) for s in table.sparsity.tolist()}) == [(1, 1, 1), (4, 2, 2), (8, 2, 2)]
  assert (table.n < table.frame["n_params"].to_numpy() + 1).all()


def test_cli_fits_a_moe_form(tmp_path):
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  _, df = sweep("moe-leverage", seeds=2)
  df.to_csv(tmp_path / "runs.csv", index=False)
  done = subprocess.run([sys.executable, "-m", "lawsearch.cli", "fit", "--runs",
                         str(tmp_path / "runs.csv"), "--form", "moe-leverage", "--no-validate",
                         "--out", str(tmp_path / "law.json")], capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert "moe-leverage law on" in done.stdout and "noise ceiling" in done.stdout
  law = ConditionalLaw.from_json(str(tmp_path / "law.json"))
  assert law.form == "moe-leverage" and law.coefficients["e"] == pytest.approx(0.02, abs=0.005)


def test_the_moe_sweeps_analysis_prefers_the_form_that_drew_the_runs(experiment):
  analyze = experiment("moe_law_cpu/analyze.py")
  _, df = sweep("moe-leverage", seeds=2)
  table = RunsTable.of(df)
  found, fitted = analyze.fit_forms(table, n_boot=0)
  assert {"moe-power", "moe-leverage"} <= set(fitted)  # a form that cannot fit says why:
  assert found[~found["form"].isin(list(fitted))]["error"].str.contains("converge").all()
  assert found.sort_values("F").iloc[0]["form"] == "moe-leverage"  # power misses the G terms
  assert found.set_index("form").loc["moe-leverage", "e"] == pytest.approx(0.02, abs=0.005)
  measured = analyze.against_dense(table)
  assert (measured.loc[measured["setting"] == "dense", "vs_dense"] == 0).all()
  assert (measured.loc[measured["setting"] != "dense", "vs_dense"] < 0.02).all()  # gains
  assert set(measured.groupby(["scale", "d_model", "ffn_dim", "n_heads"]).size()) == {7}
  moved = analyze.optimum_by_setting(table, draws=200).set_index("setting")
  assert moved.loc["dense", "x_star"] == pytest.approx(moved.loc["8x2", "x_star"], rel=0.15)
  for b in ("b_x", "b_r"):  # the law's gain does not depend on the shape
    assert abs(moved.loc["8x2", b]) < 4 * moved.loc["8x2", f"{b}_se"] + 1e-3, b


def test_the_moe_sweeps_analysis_finds_a_gain_that_moves_the_optimum(experiment):
  # 8x2's losses times x^0.05: its log gain over the dense shape has slope 0.05 in ln x, so its
  # optimum sits at a smaller d/sqrt(N) than the dense law's.
  analyze = experiment("moe_law_cpu/analyze.py")
  _, df = sweep("moe-leverage", seeds=2)
  table = RunsTable.of(df)
  planted = np.where(analyze.setting(table) == "8x2", table.x ** 0.05, 1.0)
  moved = analyze.optimum_by_setting(RunsTable.of(df.assign(loss=df["loss"] * planted)),
                                     draws=200).set_index("setting")
  assert moved.loc["8x2", "b_x"] == pytest.approx(0.05, abs=4 * moved.loc["8x2", "b_x_se"])
  assert abs(moved.loc["8x2", "b_r"]) < 4 * moved.loc["8x2", "b_r_se"] + 1e-3
  low, high = moved.loc["8x2", "x_star_95"]
  assert high < moved.loc["dense", "x_star"] and low <= moved.loc["8x2", "x_star"] <= high


def test_the_moe_sweeps_search_at_its_heldout_scale_gives_both_picks(experiment):
  analyze = experiment("moe_law_cpu/analyze.py")
  _, df = sweep("moe-leverage")
  law = ConditionalLaw("moe-leverage", DENSE + TRUE["moe-leverage"])
  table = RunsTable.of(df)
  result, both = analyze.heldout_search(law, table)
  assert result.n_params == 3.2e5 and set(both.best) == {"dense", "moe"}
  r = result.candidates["mlp_attn_ratio"]  # within the fitting runs' r: no extrapolation
  assert r.min() >= table.r.min() and r.max() <= table.r.max()
  assert both.best["moe"].loss <= result.target * (1 + 1e-12)
  assert both.throughput is not None and 1 in both.throughput.index


def test_the_heldout_gains_set_each_mixture_against_its_dense_shape(experiment, tmp_path):
  # Noise-free runs of one law: every mixture's measured gain over its dense shape is the law's.
  analyze = experiment("moe_law_cpu/analyze.py")
  law = ConditionalLaw("moe-power", DENSE + TRUE["moe-power"])
  df = laws.synthetic_sweep(law, sparsity=SETTINGS, noise=0.0, scales=("80M",))
  (tmp_path / "laws").mkdir()
  law.to_json(str(tmp_path / "laws" / "moe-power.json"))
  gains = analyze.heldout_gains(RunsTable.of(df), str(tmp_path / "laws"))
  assert set(gains["setting"]) == {f"{e}x{g}" for e, _, g in SETTINGS}
  np.testing.assert_allclose(gains["measured"], gains["moe-power"], rtol=1e-6)
  dense_loss = gains["loss"] - gains["measured"]
  e = gains["setting"].str.split("x").str[0].astype(float)
  np.testing.assert_allclose(gains["measured"], dense_loss * (e ** -0.03 - 1), rtol=1e-6)


def test_the_heldout_check_tells_mixtures_from_their_dense_shapes():
  from lawsearch.laws import validation  # pylint: disable=import-outside-toplevel

  law, df = sweep("moe-leverage", seeds=2)
  df = df.assign(gqa=df["n_heads"] // df["n_kv_heads"])
  shapes, check = validation.heldout_check(df, law, "145M")
  held = df[df["scale"] == "145M"]
  assert len(shapes) == len(held) // 2  # one row per shape and setting, seeds averaged
  assert (shapes["seeds"] == 2).all()
  best = shapes.loc[shapes["predicted_rel"].idxmin()]
  assert best["n_experts"] == 16 and best["top_k"] == 1  # the law's largest gain: E/k = 16


def test_plots_draw_a_mixture_at_its_dense_equivalent(tmp_path):
  from lawsearch.report import fit_plots  # pylint: disable=import-outside-toplevel

  law, df = sweep("moe-leverage")
  true_l_opt = df["l_opt_true"].to_numpy()
  clean = df.assign(loss=law.predict(df, true_l_opt))
  normalised = fit_plots._normalised(law, clean, true_l_opt)  # pylint: disable=protected-access
  x, r, lo, measured, _, _, factor = normalised
  moe = RunsTable.of(clean).sparsity[:, 0] > 1
  assert (factor[~moe] == 1).all() and (factor[moe] < 1).all()  # mixtures gain
  with laws.float64():
    dense = np.asarray(ConditionalLaw("multiplicative", DENSE).predict_xr(x, r, lo)) / lo
  np.testing.assert_allclose(measured / factor, dense, rtol=1e-9)  # noiseless: on the curve
  written = fit_plots.save(law, clean, str(tmp_path))
  assert all((tmp_path / name).stat().st_size > 10_000 for name in
             ("u_curves.png", "contours.png", "predicted_vs_measured.png")) and len(written) == 3


def test_the_moe_sweeps_picks_step_sets_measured_against_predicted(experiment, tmp_path):
  import json  # pylint: disable=import-outside-toplevel

  from lawsearch import arch, runs  # pylint: disable=import-outside-toplevel

  analyze = experiment("moe_law_cpu/analyze.py")
  dense = arch.ArchSpec(n_layers=2, d_model=32, n_heads=2, n_kv_heads=2, head_dim=16, ffn_dim=64,
                        vocab_size=512)
  moe = arch.mixture(dense, 4, 2)
  (tmp_path / "search").mkdir()
  (tmp_path / "search" / "moe.json").write_text(json.dumps(
      {"best": {"dense": {"spec": dense.fields()}, "moe": {"spec": moe.fields()}}}))
  (tmp_path / "summary.json").write_text(json.dumps({"preferred": "moe-leverage"}))
  law = ConditionalLaw("moe-leverage", DENSE + TRUE["moe-leverage"])
  law.to_json(str(tmp_path / "laws" / "moe-leverage.json"))
  for i, (spec, loss) in enumerate([(dense, 3.30), (dense, 3.32), (moe, 3.25)]):
    runs.write_result(str(tmp_path / "heldout" / f"run{i}"),
                      runs.result_record(spec, tokens=1e6, loss=loss, seed=i))
  found = analyze.picks(str(tmp_path), trials=1).set_index("pick")
  assert found.loc["dense", "seeds"] == 2 and found.loc["dense", "loss"] == pytest.approx(3.31)
  with laws.float64():
    want = float(law.predict(analyze.spec_row(moe), 1.0)[0]) * 3.25  # L_opt: lowest measured
  assert found.loc["moe", "predicted_loss"] == pytest.approx(want, rel=1e-9)
  assert (found[["tok/s b1", "tok/s b32"]] > 0).all().all()
  assert (found["tok/s b32"] < found["roofline b32"]).all()  # below this CPU's roofline


def test_the_moe_sweeps_fitting_runs_take_the_dense_sweeps_runs_at_its_scales(experiment,
                                                                                tmp_path):
  from lawsearch import arch, runs  # pylint: disable=import-outside-toplevel

  analyze = experiment("moe_law_cpu/analyze.py")
  dense = arch.ArchSpec(n_layers=4, d_model=40, n_heads=4, n_kv_heads=4, head_dim=16, ffn_dim=88,
                        vocab_size=512)  # 83k: the 80k scale
  wider = dataclasses.replace(dense, d_model=48, ffn_dim=128, n_heads=6, n_kv_heads=6)  # 145k
  larger = dataclasses.replace(dense, d_model=72, ffn_dim=168, n_heads=8, n_kv_heads=8)  # 297k
  mixture = arch.mixture(dense, 8, 2)

  def write(where, name, spec):
    runs.write_result(str(tmp_path / where / name), runs.result_record(spec, tokens=1e6,
                                                                       loss=3.3))

  write("moe/fit", "dense-80k", dense)  # also trained by the dense sweep: the same identity
  write("moe/fit", "moe-80k", mixture)
  for name, spec in (("dense-80k", dense), ("dense-145k", wider), ("dense-297k", larger)):
    write("v2", name, spec)
  table = analyze.fitting_runs(str(tmp_path / "moe"), str(tmp_path / "v2"))
  assert sorted(table["run_dir"].map(os.path.basename)) == ["dense-145k", "dense-80k", "moe-80k"]
  assert len(analyze.fitting_runs(str(tmp_path / "moe"), "")) == 2
  with pytest.raises(UserError, match="no such directory"):
    analyze.fitting_runs(str(tmp_path / "moe"), str(tmp_path / "no-such-root"))


def test_the_committed_moe_sweep_refits_to_its_committed_law(experiment):
  analyze = experiment("moe_law_cpu/analyze.py")
  root = analyze.DEFAULT_ROOT
  if not os.path.exists(os.path.join(root, "summary.json")):
    pytest.skip(f"no committed MoE law under {root} yet (experiments/moe_law_cpu/train.sh)")
  form = analyze.preferred_form(root)
  committed = ConditionalLaw.from_json(os.path.join(root, "laws", f"{form}.json"))
  table = RunsTable.of(analyze.fitting_runs(root, analyze.DEFAULT_DENSE))
  refit = laws.fit_runs(table, form, l_opt="joint", r_range=None, n_boot=0, validate=False).law
  assert refit.fit_info.n_points == committed.fit_info.n_points
  with laws.float64():
    want = np.asarray(committed.predict_xr(table.x, table.r, 1.0, table.sparsity))
    got = np.asarray(refit.predict_xr(table.x, table.r, 1.0, table.sparsity))
  np.testing.assert_allclose(got, want, rtol=1e-5)
