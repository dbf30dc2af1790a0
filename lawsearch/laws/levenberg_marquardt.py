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
import numpy as np

from lawsearch.laws import forms
from lawsearch.laws.precision import float64


class LMResult(NamedTuple):
  """Best start of a multi-start fit (host numpy, float64)."""
  theta: np.ndarray       # [k] coefficients of the best start
  sse: float              # its sum of (weighted) squared residuals
  grad_norm: float        # its `optimality` (scale-free gradient) at the end
  iterations: int         # LM iterations the best start took
  converged: bool         # whether that optimality is within the tolerance
  all_sse: np.ndarray     # [n_starts] final SSE of every start


def initial_starts(form: str, x, r, l_opt, loss, n_starts: int = 8, seed: int = 0) -> np.ndarray:
  """Starting coefficients [n_starts, k], float64.

  Start 0 is a linear least-squares fit of the form's linearisation: loss - l_opt on
  [1, ln x, 1/x, ln r, 1/r] for the additive form (exact), ln(loss / l_opt) on the same basis for
  the multiplicative and joint forms (first order in the factors' deviations; b0 = 1, the gauge).
  The others multiply the free coefficients of start 0 by seeded log-normal factors (sigma 0.5).
  A MoE form's sparsity factor starts at 1 in start 0 (gains 0, gamma 1), at small seeded gains
  in the others. The decaying form's linearisation is exact at gamma = 0, where start 0 puts it;
  the others start gamma at small seeded values of either sign.
  """
  spec = forms.get_form(form)
  dense = forms.FORMS[spec.base] if spec.is_moe else spec
  x, r, l_opt, loss = (np.asarray(v, dtype=np.float64) for v in (x, r, l_opt, loss))
  basis = np.stack([np.ones_like(x), np.log(x), 1 / x, np.log(r), 1 / r], axis=1)
  target = loss - l_opt if form == "additive" else np.log(loss / l_opt)
  c, *_ = np.linalg.lstsq(basis, target, rcond=None)
  if form == "additive":
    base = c
  elif form == "decaying":
    base = np.append(c, 0.0)
  else:
    scale = np.exp(c[0])
    base = np.array([scale, scale * c[1], scale * c[2], 1.0, c[3], c[4], 0.0])[:len(dense.names)]
  rng = np.random.default_rng(seed)
  factors = np.exp(0.5 * rng.standard_normal((n_starts, base.size)))
  factors[0] = 1.0
  factors[:, ~dense.free_mask()] = 1.0
  starts = base * factors
  if form == "joint":  # the interaction starts at small values of either sign
    starts[1:, -1] = 0.01 * rng.standard_normal(n_starts - 1)
  if form == "decaying":
    starts[1:, -1] = 0.3 * rng.standard_normal(n_starts - 1)
  if spec.is_moe:
    phi = np.zeros((n_starts, len(spec.sparsity_names)))
    phi[1:] = 0.05 * rng.standard_normal((n_starts - 1, phi.shape[1]))
    if "gamma" in spec.sparsity_names:
      phi[:, spec.sparsity_names.index("gamma")] = np.exp(10 * phi[:, 0])  # 1 in start 0
    starts = np.concatenate([starts, phi], axis=1)
  return starts


def _residual(free, x, r, l_opt, sparsity, n_params, loss, sqrt_w, *, form):
  spec = forms.FORMS[form]
  return sqrt_w * (spec.fn(spec.expand(free), x, r, l_opt, sparsity, n_params) - loss)


def optimality(free, x, r, l_opt, sparsity, n_params, loss, sqrt_w, *, form):
  """Scale-free stationarity max_j |J_j^T res| / (|J_j| |res|) (MINPACK's gtol measure)."""
  res = _residual(free, x, r, l_opt, sparsity, n_params, loss, sqrt_w, form=form)
  jac = jax.jacfwd(_residual)(free, x, r, l_opt, sparsity, n_params, loss, sqrt_w, form=form)
  denom = jnp.linalg.norm(jac, axis=0) * jnp.linalg.norm(res)
  return jnp.max(jnp.abs(jac.T @ res) / jnp.where(denom > 0, denom, 1.0))


@functools.partial(jax.jit, static_argnames=("form", "maxiter"))
def solve_batch(starts, x, r, l_opt, sparsity, n_params, loss, weights, *, form: str,
                maxiter: int):
  """LM from every start [S, k] on every weight row [S, n] (vmapped; float64 under `float64()`).

  Only the form's free coefficients move (the gauge stays fixed; starts must hold it). A start
  stops when its step falls to 1e-12 of its coefficients' norm (steps are rejected once the sum of
  squares stops decreasing in float64) or its gradient vanishes.
  Returns (theta [S, k], sse [S], optimality [S], iterations [S]).
  """
  spec = forms.FORMS[form]
  starts = starts[:, spec.free_mask()]
  import jaxopt  # pylint: disable=g-import-not-at-top  (lazy: it pulls in scipy.optimize, ~1 s)
  residual = functools.partial(_residual, form=form)
  solver = jaxopt.LevenbergMarquardt(
      residual, maxiter=maxiter, stop_criterion="madsen-nielsen", xtol=1e-12, gtol=1e-14,
      solver="cholesky", materialize_jac=True, implicit_diff=False,
      unroll=False)  # a real while loop: stop when every start has converged

  def one(theta0, w):
    args = (x, r, l_opt, sparsity, n_params, loss, jnp.sqrt(w))
    free, state = solver.run(theta0, *args)
    return (spec.expand(free), 2.0 * state.value, optimality(free, *args, form=form),
            state.iter_num)

  return jax.vmap(one)(starts, weights)


def solve_many(form: str, x, r, l_opt, loss, starts, weights, maxiter: int, sparsity=None,
               n_params=None):
  """`solve_batch` on host float64 arrays [n] (weights [S, n]; sparsity [n, 3], None: dense;
  n_params [n], N, None: N_REF), inside `float64()`; numpy results.

  The points are padded with weight 0 to a power of two (at least 256), so fits share compiles.
  """
  n = np.size(x)
  pad = max(256, 1 << (n - 1).bit_length()) - n  # bucket the size: one compile serves most fits
  sparsity = np.ones((n, 3)) if sparsity is None else np.asarray(sparsity, np.float64)
  n_params = np.full(n, forms.N_REF) if n_params is None else n_params
  data = [np.pad(np.asarray(v, dtype=np.float64), [(0, pad)] + [(0, 0)] * (np.ndim(v) - 1),
                 constant_values=fill)
          for v, fill in ((x, 1.0), (r, 1.0), (l_opt, 1.0), (sparsity, 1.0),
                          (n_params, forms.N_REF), (loss, 1.0))]
  weights = np.pad(np.asarray(weights, dtype=np.float64), ((0, 0), (0, pad)))  # padding: weight 0
  with float64():
    out = solve_batch(jnp.asarray(np.asarray(starts, dtype=np.float64)),
                      *map(jnp.asarray, data), jnp.asarray(weights), form=form,
                      maxiter=int(maxiter))
    return tuple(np.asarray(v) for v in jax.device_get(out))


def fit(form: str, x, r, l_opt, loss, *, sparsity=None, n_params=None, starts=None,
        weights=None, n_starts: int = 8, seed: int = 0, maxiter: int = 200,
        tol: float = 1e-6) -> LMResult:
  """Least-squares fit of `form` from several starts; the best start (lowest SSE; of starts tied
  with it, a converged one) is returned.

  x, r, l_opt, loss: [n] float arrays; sparsity: [n, 3] (E, top-k, G) for a MoE form (None:
  dense); n_params: [n] N, read by the decaying form (None: N_REF). starts: [S, k] or None
  (then `initial_starts`).
  weights: [n] per-point weights or None. tol: the largest `optimality` (scale-free gradient) at
  which the best start counts as converged.
  """
  data = [np.asarray(v, dtype=np.float64) for v in (x, r, l_opt, loss)]
  if starts is None:
    starts = initial_starts(form, *data, n_starts=n_starts, seed=seed)
  starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
  w = np.ones_like(data[0]) if weights is None else np.asarray(weights, dtype=np.float64)
  theta, sse, gnorm, iters = solve_many(form, *data, starts,
                                        np.broadcast_to(w, (starts.shape[0], w.size)), maxiter,
                                        sparsity=sparsity, n_params=n_params)
  sse = np.where(np.isfinite(sse), sse, np.inf)
  # Among starts at the lowest sum of squares (to 1e-9), a converged one: a coefficient whose
  # optimum is a stationary boundary (moe-saturating's w = 0) is converged only where a start
  # sits exactly on it; one a hair away has the same loss and a scale-free gradient that stays.
  best = int(np.argmin(sse))
  tied = (sse <= sse[best] * (1 + 1e-9)) & (gnorm <= tol)
  if gnorm[best] > tol and tied.any():
    best = int(np.argmax(tied))
  return LMResult(theta=np.asarray(theta[best]), sse=float(sse[best]),
                  grad_norm=float(gnorm[best]), iterations=int(iters[best]),
                  converged=bool(gnorm[best] <= tol), all_sse=np.asarray(sse))
