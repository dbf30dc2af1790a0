"""ChinchillaLaw: closed forms, the replication's golden fit, scipy agreement and bad input."""

import pathlib

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

from lawsearch.laws import ChinchillaLaw
from lawsearch.laws import chinchilla_fit
from lawsearch.laws.chinchilla_reference import huber_objective_and_grad

DATA = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / (
    "chinchilla_svg_extracted.csv")
MINIMUM = 1.018274e-3  # PAPER.md: the minimum of the replication's objective on the 240 kept points


def huber_objective(theta, log_n, log_d, log_l, delta=1e-3):
  """The replication's objective in plain numpy/scipy (the independent reference)."""
  a, b, e, alpha, beta = theta
  pred = special.logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
  return special.huber(delta, log_l - pred).sum()


def test_predict_matches_formula():
  law = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
  n, d = np.array([1e8, 7e10]), np.array([2e9, 1.4e12])
  np.testing.assert_allclose(law.predict(n, d), 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28,
                             rtol=1e-15)


def test_compute_optimal_minimises_loss_on_the_budget():
  law = ChinchillaLaw.epoch()
  c = 1e22
  n_opt, d_opt = law.compute_optimal(c)
  np.testing.assert_allclose(6 * n_opt * d_opt, c, rtol=1e-12)
  # Brute force along C = 6 N D: no N on a fine log grid does better.
  n = np.geomspace(n_opt / 10, n_opt * 10, 20001)
  best = n[np.argmin(law.predict(n, c / (6 * n)))]
  np.testing.assert_allclose(best, n_opt, rtol=1e-3)


def test_objective_gradient_and_hessian_match_numpy_and_autodiff():
  import jax
  import jax.numpy as jnp
  from lawsearch.laws import float64
  rng = np.random.default_rng(0)
  log_n, log_d = rng.uniform(17, 25, 40), rng.uniform(20, 27, 40)
  log_l = np.log(1.8 + 400 * np.exp(-0.34 * log_n) + 2000 * np.exp(-0.37 * log_d))
  log_l += 0.004 * rng.standard_normal(40)  # residuals on both sides of delta
  theta = np.array([[6.0, 7.5, 0.6, 0.33, 0.36], [10.0, 5.0, 0.0, 1.0, 0.5]])
  with float64():
    args = tuple(map(jnp.asarray, (log_n, log_d, log_l)))
    f, g, h = jax.jit(chinchilla_fit.value_grad_hess)(jnp.asarray(theta), *args)
    one = lambda p: chinchilla_fit.value_and_grad(p[None], *args)[0][0]
    h_ad = jax.jit(jax.vmap(jax.hessian(one)))(jnp.asarray(theta))
  for s in range(2):
    want_f, want_g = huber_objective_and_grad(theta[s], log_n, log_d, log_l)
    assert f[s] == pytest.approx(huber_objective(theta[s], log_n, log_d, log_l), rel=1e-12)
    assert want_f == pytest.approx(huber_objective(theta[s], log_n, log_d, log_l), rel=1e-12)
    np.testing.assert_allclose(g[s], want_g, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(h[s], h_ad[s], rtol=1e-8, atol=1e-14)


@pytest.fixture(scope="module")
def replication():
  if not DATA.exists():
    pytest.skip(f"replication data not found at {DATA}")
  df = pd.read_csv(DATA)
  n, c, loss = (df[k].to_numpy(float) for k in ("Model Size", "Training FLOP", "loss"))
  law = ChinchillaLaw.fit(n, c / (6 * n), loss, drop_highest=5)  # the full 4,500-start grid
  keep = np.sort(np.argsort(loss)[:-5])
  return law, np.log(n[keep]), np.log((c / (6 * n))[keep]), np.log(loss[keep])


def test_golden_replication_fit_reaches_the_true_minimum(replication):
  law, log_n, log_d, log_l = replication
  assert law.fit_info.n_points == 240 and law.fit_info.n_starts == 4500
  assert abs(law.objective - MINIMUM) < 1e-9
  # Independent check of the reported objective.
  assert huber_objective(law.log_params, log_n, log_d, log_l) == pytest.approx(law.objective,
                                                                               rel=1e-12)
  for name, want in dict(E=1.8172, A=477.83, B=2143.4).items():
    assert getattr(law, name) == pytest.approx(want, rel=0.01), name
  assert law.alpha == pytest.approx(0.3473, abs=0.002)
  assert law.beta == pytest.approx(0.3672, abs=0.002)
  # The published Epoch values sit higher on the same objective (the landscape is flat along B).
  assert huber_objective(ChinchillaLaw.epoch().log_params, log_n, log_d, log_l) > law.objective


def test_scipy_lbfgsb_reaches_the_same_objective(replication):
  law, *data = replication
  # Three grid starts (e = alpha = beta = 0) from which scipy's L-BFGS-B reaches the basin.
  starts = [[20.0, 10.0, 0, 0, 0], [0.0, 15.0, 0, 0, 0], [15.0, 0.0, 0, 0, 0]]
  best = min((optimize.minimize(huber_objective_and_grad, s, args=tuple(data), jac=True,
                                method="L-BFGS-B") for s in starts), key=lambda r: r.fun)
  polished = optimize.minimize(huber_objective_and_grad, best.x, args=tuple(data), jac=True,
                               method="BFGS", options=dict(gtol=1e-12))
  assert abs(polished.fun - law.objective) < 1e-9
  assert law.objective <= polished.fun + 1e-12


@pytest.mark.parametrize("n, d, loss, match", [
    ([1e8, 2e8, 3e8, 4e8, 5e8, 6e8], [1e9] * 6, [3.0, 2.9, np.nan, 2.8, 2.7, 2.6], "NaN"),
    ([1e8, 2e8, 3e8, 4e8, 5e8, 6e8], [1e9] * 6, [3.0, 2.9, 0.0, 2.8, 2.7, 2.6], "non-positive"),
    ([1e8, 2e8, 3e8, 4e8, 5e8, 6e8], [1e9] * 6, [3.0, 2.9, np.inf, 2.8, 2.7, 2.6], "infinite"),
    ([1e8, 2e8, 3e8, 4e8, 5e8], [1e9] * 5, [3.0, 2.9, 2.85, 2.8, 2.7], "5 point"),
    ([1e8, 2e8], [1e9] * 3, [3.0, 2.9], "one length"),
])
def test_bad_input_is_a_clear_error(n, d, loss, match):
  with pytest.raises(ValueError, match=match):
    ChinchillaLaw.fit(n, d, loss)


def test_non_convergence_reports_the_best_objective(replication):
  _, log_n, log_d, log_l = replication  # same shapes as the golden fit: no new compile
  with pytest.raises(ValueError, match=r"did not converge: best objective 0\.00101827"):
    ChinchillaLaw.fit(np.exp(log_n), np.exp(log_d), np.exp(log_l), tol=1e-300)
