"""Multi-start Levenberg-Marquardt for the conditional law (jaxopt, float64, vmapped starts).

Plain least squares of the raw loss (PAPER.md section 3): minimise sum_i w_i (L(theta; x_i, r_i,
l_opt_i) - loss_i)^2. Starts come from a linearisation that is exact for the additive form and
close for the multiplicative one, plus seeded multiplicative perturbations. Weights w (default 1)
let the bootstrap refit resamples without changing shapes.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np

from lawsearch.laws import forms
from lawsearch.laws.precision import float64


class LMResult(NamedTuple):
  """Best start of a multi-start fit (host numpy, float64)."""
  theta: np.ndarray       # [k] coefficients of the best start
  sse: float              # its sum of (weighted) squared residuals
  grad_norm: float        # l2 norm of its gradient J^T res at the end
  iterations: int         # LM iterations the best start took
  converged: bool         # whether the best start met the gradient tolerance within maxiter
  all_sse: np.ndarray     # [n_starts] final SSE of every start


def initial_starts(form: str, x, r, l_opt, loss, n_starts: int = 8, seed: int = 0) -> np.ndarray:
  """Starting coefficients [n_starts, k], float64.

  Start 0 is a linear least-squares fit of the form's linearisation: loss - l_opt on
  [1, ln x, 1/x, ln r, 1/r] for the additive form (exact), ln(loss / l_opt) on the same basis for
  the multiplicative and joint forms (first order in the factors' deviations). The others multiply
  start 0 by seeded log-normal factors (sigma 0.5).
  """
  spec = forms.get_form(form)
  x, r, l_opt, loss = (np.asarray(v, dtype=np.float64) for v in (x, r, l_opt, loss))
  basis = np.stack([np.ones_like(x), np.log(x), 1 / x, np.log(r), 1 / r], axis=1)
  target = loss - l_opt if form == "additive" else np.log(loss / l_opt)
  c, *_ = np.linalg.lstsq(basis, target, rcond=None)
  if form == "additive":
    base = c
  else:
    scale = np.exp(c[0])
    base = np.array([scale, scale * c[1], scale * c[2], 1.0, c[3], c[4], 0.0])[:len(spec.names)]
  rng = np.random.default_rng(seed)
  factors = np.exp(0.5 * rng.standard_normal((n_starts, base.size)))
  factors[0] = 1.0
  starts = base * factors
  if form == "joint":  # the interaction starts at small values of either sign
    starts[1:, -1] = 0.01 * rng.standard_normal(n_starts - 1)
  return starts


def _residual(theta, x, r, l_opt, loss, sqrt_w, *, form):
  return sqrt_w * (forms.FORMS[form].fn(theta, x, r, l_opt) - loss)


@functools.partial(jax.jit, static_argnames=("form", "maxiter", "tol"))
def solve_batch(starts, x, r, l_opt, loss, weights, *, form: str, maxiter: int, tol: float):
  """LM from every start [S, k] on every weight row [S, n] (vmapped; float64 under `float64()`).

  Returns (theta [S, k], sse [S], grad_norm [S], iterations [S]).
  """
  solver = jaxopt.LevenbergMarquardt(
      functools.partial(_residual, form=form), maxiter=maxiter, tol=tol, solver="cholesky",
      materialize_jac=True, implicit_diff=False, unroll=False)  # stop when all starts converge

  def one(theta0, w):
    theta, state = solver.run(theta0, x, r, l_opt, loss, jnp.sqrt(w))
    return theta, 2.0 * state.value, state.error, state.iter_num

  return jax.vmap(one)(starts, weights)


def fit(form: str, x, r, l_opt, loss, *, starts=None, weights=None, n_starts: int = 8,
        seed: int = 0, maxiter: int = 200, tol: float = 1e-10) -> LMResult:
  """Least-squares fit of `form` from several starts; the best start (lowest SSE) is returned.

  x, r, l_opt, loss: [n] float arrays. starts: [S, k] or None (then `initial_starts`).
  weights: [n] per-point weights or None. tol: l2 norm of the gradient J^T res at which a start
  stops (float64, so 1e-10 is reachable).
  """
  data = [np.asarray(v, dtype=np.float64) for v in (x, r, l_opt, loss)]
  if starts is None:
    starts = initial_starts(form, *data, n_starts=n_starts, seed=seed)
  starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
  w = np.ones_like(data[0]) if weights is None else np.asarray(weights, dtype=np.float64)
  with float64():
    theta, sse, gnorm, iters = jax.device_get(solve_batch(
        jnp.asarray(starts), *map(jnp.asarray, data),
        jnp.broadcast_to(jnp.asarray(w), (starts.shape[0], w.size)),
        form=form, maxiter=maxiter, tol=tol))
  sse = np.where(np.isfinite(sse), sse, np.inf)
  best = int(np.argmin(sse))
  return LMResult(theta=np.asarray(theta[best]), sse=float(sse[best]),
                  grad_norm=float(gnorm[best]), iterations=int(iters[best]),
                  converged=bool(gnorm[best] <= tol), all_sse=np.asarray(sse))
