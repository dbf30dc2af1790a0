"""ConditionalLaw: published laws, pure predictions, JSON, synthetic recovery, scipy agreement."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from lawsearch import laws
from lawsearch.laws import ChinchillaLaw, ConditionalLaw, FORMS, float64, synthetic_sweep
from lawsearch.laws import levenberg_marquardt as lm
from lawsearch.laws.conditional import prepare
from lawsearch.laws.runs_table import RunsTable


@pytest.fixture(scope="module")
def sweep():
  return synthetic_sweep(scales=("80M", "145M", "297M"), seed=0)


def numpy_law(form, theta, x, r, l_opt, n=None):
  """The forms written out in numpy (independent reference); n: N, for the decaying form."""
  if form == "multiplicative":
    a0, a1, a2, b0, b1, b2 = theta
    return (a0 + a1 * np.log(x) + a2 / x) * (b0 + b1 * np.log(r) + b2 / r) * l_opt
  if form == "additive":
    a0, a1, a2, b1, b2 = theta
    return a0 + a1 * np.log(x) + a2 / x + b1 * np.log(r) + b2 / r + l_opt
  if form == "decaying":
    a0, a1, a2, b1, b2, gamma = theta
    effect = a1 * np.log(x) + a2 / x + b1 * np.log(r) + b2 / r
    return np.exp(a0 + effect * (n / 1e6) ** -gamma) * l_opt
  a0, a1, a2, b0, b1, b2, c = theta
  return ((a0 + a1 * np.log(x) + a2 / x) * (b0 + b1 * np.log(r) + b2 / r)
          + c * np.log(x) * np.log(r)) * l_opt


def test_paper_laws_have_the_published_optima():
  x, r = ConditionalLaw.paper("80m-297m").optimum()
  assert x == pytest.approx(0.0078 / 0.0974) and round(x, 2) == 0.08
  assert r == pytest.approx(0.0065 / 0.0063) and round(r, 3) == 1.032
  x, r = ConditionalLaw.paper("1b-only").optimum()
  assert round(x, 3) == 0.074 and r == pytest.approx(0.0062 / 0.0051)
  assert ConditionalLaw.paper("1b-only").coefficients == dict(
      a0=2.319, a1=0.238, a2=0.0176, b0=0.5104, b1=0.0051, b2=0.0062)


def test_unknown_names_list_the_known_ones():
  with pytest.raises(ValueError, match="80m-297m, 1b-only"):
    ConditionalLaw.paper("3b")
  with pytest.raises(ValueError, match="multiplicative, additive, joint"):
    ConditionalLaw("quadratic", (1.0,))


def test_predict_xr_is_pure_jnp_under_jit_vmap_grad():
  law = ConditionalLaw.paper("80m-297m")
  theta = law.params
  x, r, lo = np.array([0.05, 0.08, 0.12]), np.array([0.7, 1.0, 3.0]), np.array([2.9, 2.8, 2.7])
  want = numpy_law("multiplicative", theta, x, r, lo)
  with float64():
    got = jax.jit(jax.vmap(law.predict_xr))(jnp.asarray(x), jnp.asarray(r), jnp.asarray(lo))
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # At the optimum both partial derivatives vanish.
    gx, gr = map(float, jax.grad(law.predict_xr, argnums=(0, 1))(*law.optimum(), 2.8))
  assert abs(gx) < 1e-12 and abs(gr) < 1e-12
  np.testing.assert_allclose(law.predict_xr(0.08, 1.0, 2.8), want[1], rtol=1e-6)  # float inputs


def test_joint_optimum_is_numeric_and_stationary():
  law = ConditionalLaw("joint", (2.697, 0.0974, 0.0078, 0.387, 0.0063, 0.0065, 0.002))
  x, r = law.optimum()
  with float64():
    gx, gr = map(float, jax.grad(law.predict_xr, argnums=(0, 1))(x, r, 1.0))
  assert abs(gx) < 1e-9 and abs(gr) < 1e-9
  # A law without an interior minimum says so.
  with pytest.raises(ValueError, match="no interior minimum"):
    ConditionalLaw("multiplicative", (2.7, -0.1, 0.0078, 0.387, 0.0063, 0.0065)).optimum()


def test_json_round_trip(tmp_path, sweep):
  law = ConditionalLaw.fit(sweep)
  path = tmp_path / "law.json"
  text = law.to_json(path)
  assert json.loads(text)["fit"]["n_points"] == law.fit_info.n_points
  assert ConditionalLaw.from_json(path) == law
  assert ConditionalLaw.from_json(text) == law
  with pytest.raises(ValueError, match="law JSON lacks 'coefficients'"):
    ConditionalLaw.from_json('{"form": "multiplicative"}')
  with pytest.raises(ValueError, match="coefficients must be finite numbers"):
    ConditionalLaw.from_json('{"form": "multiplicative", "coefficients": {"a0": NaN}}')


def test_multiplicative_recovers_the_true_optimum(sweep):
  truth = ConditionalLaw.paper("80m-297m")
  x0, r0 = truth.optimum()
  # L_opt from the Chinchilla law that generated the data: within a few percent.
  law = ConditionalLaw.fit(sweep, l_opt=ChinchillaLaw.epoch())
  x, r = law.optimum()
  assert x == pytest.approx(x0, rel=0.03) and r == pytest.approx(r0, rel=0.03)
  # The paper's empirical L_opt (lowest loss per scale) also lands near it.
  x, r = ConditionalLaw.fit(sweep).optimum()
  assert x == pytest.approx(x0, rel=0.12) and r == pytest.approx(r0, rel=0.05)


@pytest.mark.parametrize("form, theta", [
    ("additive", (0.08, 0.075, 0.0065, 0.045, 0.047)),
    ("joint", (1.03, 0.028, 0.0024, 1.0, 0.0126, 0.0164, -0.0012)),
    ("decaying", (-0.1, 0.3, 0.025, 0.05, 0.06, 0.5)),  # the effect at 80M: 1/11 of this
])
def test_other_forms_fit_their_own_data(form, theta):
  truth = ConditionalLaw(form, theta)
  df = synthetic_sweep(truth, seed=1, noise=0.001)
  law = ConditionalLaw.fit(df, form, l_opt=df["l_opt_true"].to_numpy())
  np.testing.assert_allclose(law.optimum(), truth.optimum(), rtol=0.05)
  resid = law.predict(df, df["l_opt_true"].to_numpy()) - df["loss"]
  assert np.sqrt(np.mean(resid**2)) < 2 * 0.001 * df["loss"].mean()


@pytest.mark.parametrize("form", sorted(f for f in FORMS if not FORMS[f].is_moe))  # MoE: test_laws_moe
def test_same_sum_of_squares_as_scipy_lm(form, sweep):
  spec = FORMS[form]
  x, r, lo, loss, _, keep = prepare(sweep, None, (0.5, 5.0), spec.n_free)
  n = RunsTable(sweep).n[keep]
  starts = lm.initial_starts(form, x, r, lo, loss)
  ours = lm.fit(form, x, r, lo, loss, starts=starts, n_params=n)
  free = spec.free_mask()

  def residual(p):
    theta = np.array(starts[0])
    theta[free] = p
    return numpy_law(form, theta, x, r, lo, n) - loss

  theirs = min(2 * optimize.least_squares(residual, s[free], method="lm").cost for s in starts)
  assert ours.converged
  assert ours.sse == pytest.approx(theirs, rel=1e-8)


def test_r_filter_is_applied_and_reported(sweep):
  law = ConditionalLaw.fit(sweep)
  inside = sweep["mlp_attn_ratio"].between(0.5, 5.0)
  assert law.fit_info.n_points == inside.sum() and law.fit_info.n_excluded == (~inside).sum() > 0
  wide = ConditionalLaw.fit(sweep, r_range=None)
  assert wide.fit_info.n_points == len(sweep) and wide.fit_info.r_range is None


def test_l_opt_sources_agree_with_their_definitions(sweep):
  law = ConditionalLaw.paper("80m-297m")
  x = sweep["d_model"] / np.sqrt(sweep["n_params"])
  r = sweep["mlp_attn_ratio"]
  empirical = sweep.groupby("scale")["loss"].transform("min")
  np.testing.assert_allclose(law.predict(sweep), numpy_law("multiplicative", law.params, x, r,
                                                           empirical), rtol=1e-12)
  chin = ChinchillaLaw.epoch()
  np.testing.assert_allclose(
      law.predict(sweep, chin),
      numpy_law("multiplicative", law.params, x, r,
                chin.predict(sweep["n_params"].to_numpy(float), sweep["tokens"].to_numpy(float))),
      rtol=1e-12)
  np.testing.assert_allclose(law.predict(sweep.assign(l_opt=3.0)),
                             numpy_law("multiplicative", law.params, x, r, 3.0), rtol=1e-12)


def test_empirical_l_opt_groups_scales_without_a_scale_column(sweep):
  law = ConditionalLaw.paper("80m-297m")
  np.testing.assert_allclose(law.predict(sweep.drop(columns="scale")), law.predict(sweep),
                             rtol=1e-15)


@pytest.mark.parametrize("change, match", [
    (lambda d: d.drop(columns="mlp_attn_ratio"), r"missing column\(s\) \['mlp_attn_ratio'\]"),
    (lambda d: d.assign(loss=np.where(d.index == 3, np.nan, d["loss"])), "NaN"),
    (lambda d: d.assign(loss=np.where(d.index == 3, np.inf, d["loss"])), "infinite"),
    (lambda d: d.assign(loss=np.where(d.index == 3, -1.0, d["loss"])), "non-positive"),
    (lambda d: d.iloc[:5], "5 point"),
])
def test_bad_input_is_a_clear_error(sweep, change, match):
  with pytest.raises(ValueError, match=match):
    ConditionalLaw.fit(change(sweep))


def test_non_convergence_reports_the_best_objective(sweep):
  with pytest.raises(ValueError, match="did not converge .* best objective"):
    ConditionalLaw.fit(sweep, tol=0.0)


def test_fit_runs_is_the_fit_stage(sweep):
  summary = laws.fit_runs(sweep, "multiplicative", l_opt="empirical", n_boot=40)
  law = ConditionalLaw.fit(sweep, "multiplicative", l_opt="empirical")
  assert summary.law == law and summary.optimum == law.optimum()
  c = summary.coefficients.set_index("coefficient")
  assert list(c.index) == list(law.coefficients)
  assert (c["low"] <= c["estimate"]).all() and (c["estimate"] <= c["high"]).all()
  o = summary.optimum_interval
  assert o.loc["x_star", "low"] <= summary.optimum[0] <= o.loc["x_star", "high"]
  assert summary.assessment.validation is not None and len(summary.assessment.validation) == 2
  doc = json.loads(json.dumps(summary.to_dict()))
  assert doc["optimum"]["bootstrap_refits"] == 40 and doc["n_points"] == law.fit_info.n_points
  skipped = laws.fit_runs(sweep, validate=False)
  assert skipped.assessment.validation is None and "residual_trends" in skipped.to_dict()


def test_l_opt_has_one_meaning_per_value(sweep):
  from lawsearch.laws import l_opt

  n = sweep["n_params"].to_numpy()
  chin = ChinchillaLaw.epoch()
  np.testing.assert_allclose(l_opt.for_table(sweep, "epoch"), chin.predict(n, sweep["tokens"]))
  np.testing.assert_allclose(l_opt.for_table(sweep, l_opt.parse("2.5")), 2.5)
  assert (l_opt.for_table(sweep, "relative") == 1).all()
  empirical = l_opt.for_table(sweep, "empirical")
  assert (empirical <= sweep["loss"].to_numpy()).all() and len(set(np.round(empirical, 9))) == 3
  np.testing.assert_array_equal(l_opt.for_table(sweep, None), empirical)  # no l_opt column
  np.testing.assert_array_equal(l_opt.at(None, n[:3], 1e9), 1.0)
  np.testing.assert_allclose(l_opt.at("hoffmann", n[:3], 1e9),
                             ChinchillaLaw.hoffmann().predict(n[:3], 1e9))
  with pytest.raises(ValueError, match="needs a runs table"):
    l_opt.at("empirical", n[:3], 1e9)
  with pytest.raises(ValueError, match="use empirical, column, relative, fit"):
    l_opt.parse("best")
