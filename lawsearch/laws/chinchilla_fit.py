"""Batched robust fit of the Chinchilla law from thousands of starts (float64, jit, jaxopt).

Objective (the replication's; PAPER.md section 3), theta = (a, b, e, alpha, beta):

    f(theta) = sum_i huber_delta(log L_i - LSE(a - alpha log N_i, b - beta log D_i, e))

with huber_delta(r) = r^2/2 for |r| <= delta, delta (|r| - delta/2) otherwise (scipy's
`special.huber`). A lockstep vmap of a line-search optimizer pays, at every iteration, the slowest
start's line search for all starts; so the solver is built for the batch instead:

1. screen: a few trust-region Newton iterations on every start in lockstep. Each iteration costs
   exactly one pass over the data that returns value, gradient and Hessian together (one variadic
   reduction, so the exp/log of the log-sum-exp are computed once per point and start); a rejected
   step only raises that start's damping. The starts are then ranked by objective.
2. refine: more Newton iterations on the `keep` best starts only.
3. polish: `jaxopt.BFGS` (backtracking strong-Wolfe line search, float64) from the `polish` best,
   to a gradient norm of `tol`; the best polished start is the fit.

Newton steps use |eigenvalues| of the exact Hessian plus a Levenberg-Marquardt damping adapted
per start (Nielsen's rule), so indefinite Hessians far from the optimum still give descent steps.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lawsearch.errors import UserError
from lawsearch.laws.precision import float64

_UPPER = [(i, j) for i in range(5) for j in range(i, 5)]  # upper triangle of the 5x5 Hessian


def default_grid() -> np.ndarray:
  """The replication's 4,500 starts [4500, 5] in (a, b, e, alpha, beta) order."""
  ab = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
  e = (-1.0, -0.5, 0.0, 0.5, 1.0)
  exps = (0.0, 0.5, 1.0, 1.5, 2.0)
  return np.array(list(itertools.product(ab, ab, e, exps, exps)), dtype=np.float64)


def _point_terms(theta, log_n, log_d, log_l, delta, with_hessian):
  """Per (start, point) contributions [S, n] to f, g (and the Hessian's upper triangle)."""
  a, b, e, alpha, beta = (theta[:, i:i + 1] for i in range(5))
  ln, ld = log_n[None], log_d[None]
  u, v = a - alpha * ln, b - beta * ld
  m = jnp.maximum(jnp.maximum(u, v), e)
  eu, ev, ee = jnp.exp(u - m), jnp.exp(v - m), jnp.exp(e - m)
  s = eu + ev + ee
  r = log_l[None] - (m + jnp.log(s))
  inside = jnp.abs(r) <= delta
  terms = [jnp.where(inside, 0.5 * r * r, delta * (jnp.abs(r) - 0.5 * delta))]
  psi = jnp.clip(r, -delta, delta)                   # huber'(r)
  pu, pv, pe = eu / s, ev / s, ee / s                # softmax weights: d LSE / d(u, v, e)
  jac = [pu, pv, pe, -ln * pu, -ld * pv]             # d LSE / d theta
  terms += [-psi * j for j in jac]
  if with_hessian:
    # f'' = sum huber''(r) J J^T - huber'(r) d2LSE, d2LSE = M^T (diag p - p p^T) M.
    c = inside + psi
    diag = {(0, 0): pu, (0, 3): -ln * pu, (3, 3): ln * ln * pu, (1, 1): pv, (1, 4): -ld * pv,
            (4, 4): ld * ld * pv, (2, 2): pe}
    for i, j in _UPPER:
      t = c * jac[i] * jac[j]
      terms.append(t - psi * diag[(i, j)] if (i, j) in diag else t)
  return terms


def _reduce(terms):
  """Sum every term over points in ONE variadic reduction (fuses the shared exp/log)."""
  zeros = tuple(jnp.zeros((), terms[0].dtype) for _ in terms)
  return jax.lax.reduce(tuple(terms), zeros,
                        lambda xs, ys: tuple(x + y for x, y in zip(xs, ys)), (1,))


def value_and_grad(theta, log_n, log_d, log_l, delta=1e-3):
  """f [S] and its gradient [S, 5] for starts theta [S, 5]."""
  sums = _reduce(_point_terms(theta, log_n, log_d, log_l, delta, with_hessian=False))
  return sums[0], jnp.stack(sums[1:6], axis=-1)


def value_grad_hess(theta, log_n, log_d, log_l, delta=1e-3):
  """f [S], gradient [S, 5] and Hessian [S, 5, 5] for starts theta [S, 5], in one data pass."""
  sums = _reduce(_point_terms(theta, log_n, log_d, log_l, delta, with_hessian=True))
  upper = jnp.stack(sums[6:], axis=-1)
  rows, cols = np.array(_UPPER).T
  hess = jnp.zeros(theta.shape + (5,), theta.dtype).at[:, rows, cols].set(upper)
  hess = hess.at[:, cols, rows].set(upper)
  return sums[0], jnp.stack(sums[1:6], axis=-1), hess


class _Newton(NamedTuple):
  theta: jax.Array   # [S, 5]
  f: jax.Array       # [S]
  g: jax.Array       # [S, 5]
  h: jax.Array       # [S, 5, 5]
  lam: jax.Array     # [S] damping, relative to the largest |eigenvalue|
  nu: jax.Array      # [S] damping growth factor after a rejected step


def _newton_init(theta, data, delta):
  f, g, h = value_grad_hess(theta, *data, delta)
  f = jnp.where(jnp.isfinite(f), f, jnp.inf)
  s = theta.shape[0]
  return _Newton(theta, f, g, h, jnp.full((s,), 1e-3, theta.dtype),
                 jnp.full((s,), 2.0, theta.dtype))


def _newton_step(st: _Newton, data, delta) -> _Newton:
  """One lockstep damped-Newton iteration for every start (one data pass)."""
  w, v = jnp.linalg.eigh(st.h)
  wd = jnp.abs(w) + st.lam[:, None] * jnp.max(jnp.abs(w), axis=-1, keepdims=True) + 1e-300
  step = -jnp.einsum("sij,sj,skj,sk->si", v, 1.0 / wd, v, st.g)
  predicted = -(jnp.einsum("si,si->s", st.g, step)
                + 0.5 * jnp.einsum("si,sij,sj->s", step, st.h, step))
  theta = st.theta + step
  f, g, h = value_grad_hess(theta, *data, delta)
  ok = jnp.isfinite(f) & (f < st.f)
  gain = jnp.clip((st.f - f) / predicted, 0.0, 1.0)
  lam = jnp.where(ok, st.lam * jnp.maximum(1 / 3, 1 - (2 * gain - 1) ** 3), st.lam * st.nu)

  def pick(new, old):
    return jnp.where(ok.reshape(ok.shape + (1,) * (new.ndim - 1)), new, old)

  return _Newton(pick(theta, st.theta), pick(f, st.f), pick(g, st.g), pick(h, st.h),
                 jnp.clip(lam, 1e-15, 1e8), jnp.where(ok, 2.0, jnp.minimum(2 * st.nu, 1e8)))


def _newton(theta, data, delta, iters):
  st = jax.lax.fori_loop(0, iters, lambda _, s: _newton_step(s, data, delta),
                         _newton_init(theta, data, delta))
  return st.theta, st.f


def _best(theta, f, k):
  _, idx = jax.lax.top_k(-jnp.where(jnp.isfinite(f), f, jnp.inf), k)
  return theta[idx]


@functools.partial(jax.jit, static_argnames=("delta", "screen_iters", "keep", "refine_iters",
                                             "polish", "maxiter"))
def _solve(grid, log_n, log_d, log_l, tol, *, delta, screen_iters, keep, refine_iters, polish,
           maxiter):
  import jaxopt  # pylint: disable=g-import-not-at-top  (lazy: it pulls in scipy.optimize, ~1 s)
  data = (log_n, log_d, log_l)
  theta, f = _newton(grid, data, delta, screen_iters)
  theta, f = _newton(_best(theta, f, keep), data, delta, refine_iters)
  starts = _best(theta, f, polish)

  def fun(p):
    f, g = value_and_grad(p[None], *data, delta)
    return f[0], g[0]

  solver = jaxopt.BFGS(fun, value_and_grad=True, maxiter=maxiter, tol=tol, implicit_diff=False,
                       linesearch="backtracking",  # strong Wolfe; compiles in half zoom's time
                       unroll=False)  # a real while loop: stop when every start has converged
  theta, state = jax.vmap(solver.run)(starts)
  f, g = value_and_grad(theta, *data, delta)
  return theta, f, jnp.max(jnp.abs(g), axis=-1), state.error


class HuberFit(NamedTuple):
  """Best start of the batched fit (host float64)."""
  theta: np.ndarray   # [5] (a, b, e, alpha, beta)
  objective: float    # summed Huber loss
  grad_norm: float    # max |gradient| at theta
  polished: np.ndarray  # [polish] objectives of the polished starts


def fit_huber(log_n, log_d, log_l, grid, *, delta: float = 1e-3, screen_iters: int = 5,
              keep: int = 128, refine_iters: int = 60, polish: int = 8, tol: float = 1e-11,
              maxiter: int = 500) -> HuberFit:
  """Minimise the summed Huber objective from every start of `grid` [S, 5] (see module doc).

  log_n, log_d, log_l: [n] natural logs of N, D and the loss. Raises ValueError when the best
  polished start did not meet `tol` (with the best objective reached).
  """
  grid = np.atleast_2d(np.asarray(grid, dtype=np.float64))
  if grid.ndim != 2 or grid.shape[1] != 5 or not np.isfinite(grid).all():
    raise UserError(f"grid must be finite starts [S, 5] (a, b, e, alpha, beta), got {grid.shape}")
  keep = min(keep, len(grid))
  polish = min(polish, keep)
  with float64():
    out = jax.device_get(_solve(
        jnp.asarray(grid), *(jnp.asarray(np.asarray(v, dtype=np.float64))
                             for v in (log_n, log_d, log_l)), jnp.asarray(tol, jnp.float64),
        delta=float(delta), screen_iters=int(screen_iters), keep=int(keep),
        refine_iters=int(refine_iters), polish=int(polish), maxiter=int(maxiter)))
  theta, f, gmax, err = (np.asarray(v) for v in out)
  f = np.where(np.isfinite(f), f, np.inf)
  best = int(np.argmin(f))
  if not np.isfinite(f[best]) or not err[best] <= tol:
    raise UserError(f"the Chinchilla fit did not converge: best objective {f[best]:.9g} with "
                     f"gradient norm {err[best]:.3g} > tol {tol:g}; raise refine_iters/maxiter "
                     "or check the data")
  return HuberFit(theta=theta[best], objective=float(f[best]), grad_norm=float(gmax[best]),
                  polished=f)
