"""The loss-minimising (x*, r*) = (d/sqrt(N), r) of a conditional law, batched over coefficients.

Multiplicative, additive and decaying forms are separable, so each U-curve c0 + c1 ln z + c2/z
has its own minimum z* = c2/c1 (a minimum only when c1, c2 > 0 and, for the multiplicative form,
the other factor is positive). The joint form is minimised numerically in (ln x, ln r): a grid,
then Newton steps with the analytic gradient and Hessian. numpy float64 throughout (no tracing,
no compile).
"""

from __future__ import annotations

import numpy as np

from lawsearch.errors import UserError
from lawsearch.laws import forms

# Search box of the numeric optimum (natural logs): x in [1e-3, 1], r in [1e-2, 1e2].
_LOG_X = (np.log(1e-3), 0.0)
_LOG_R = (np.log(1e-2), np.log(1e2))


def _u(c0, c1, c2, t):
  """U-curve at z = e^t and its first two derivatives in t."""
  e = np.exp(-t)
  return c0 + c1 * t + c2 * e, c1 - c2 * e, c2 * e


def _joint_parts(theta, tx, tr):
  a0, a1, a2, b0, b1, b2, c = (theta[..., i, None] for i in range(7))
  fa, da, dda = _u(a0, a1, a2, tx)
  fb, db, ddb = _u(b0, b1, b2, tr)
  value = fa * fb + c * tx * tr
  grad = np.stack([da * fb + c * tr, fa * db + c * tx], axis=-1)
  off = da * db + c
  hess = np.stack([np.stack([dda * fb, off], -1), np.stack([off, fa * ddb], -1)], -2)
  return value, grad, hess


def _joint(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Numeric minimum of the joint form for theta [B, 7]; NaN where none is interior."""
  gx, gr = np.meshgrid(np.linspace(*_LOG_X, 121), np.linspace(*_LOG_R, 121), indexing="ij")
  gx, gr = gx.ravel(), gr.ravel()
  value, _, _ = _joint_parts(theta, gx[None], gr[None])
  k = np.argmin(value, axis=1)
  t = np.stack([gx[k], gr[k]], axis=-1)  # [B, 2]
  for _ in range(30):
    _, g, h = _joint_parts(theta, t[:, :1], t[:, 1:])
    g, h = g[:, 0], h[:, 0]
    step = np.linalg.solve(h + 1e-300, g[..., None])[..., 0]
    t = np.clip(t - step, [_LOG_X[0], _LOG_R[0]], [_LOG_X[1], _LOG_R[1]])
  _, g, h = _joint_parts(theta, t[:, :1], t[:, 1:])
  g, h = g[:, 0], h[:, 0]
  ok = (np.linalg.norm(g, axis=-1) < 1e-8) & (np.linalg.eigvalsh(h)[:, 0] > 0)
  ok &= (t[:, 0] > _LOG_X[0]) & (t[:, 0] < _LOG_X[1])
  ok &= (t[:, 1] > _LOG_R[0]) & (t[:, 1] < _LOG_R[1])
  return np.where(ok, np.exp(t[:, 0]), np.nan), np.where(ok, np.exp(t[:, 1]), np.nan)


def optimum_batch(form: str, theta) -> tuple[np.ndarray, np.ndarray]:
  """(x*, r*) for coefficients theta [B, k] of `form`; NaN where the law has no interior minimum.
  A MoE form's sparsity factor does not depend on x or r: its optimum is its dense form's."""
  theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
  spec = forms.get_form(form)
  if spec.is_moe:
    return optimum_batch(spec.base, theta[:, :len(forms.FORMS[spec.base].names)])
  if form == "joint":
    return _joint(theta)
  if form == "multiplicative":
    a0, a1, a2, b0, b1, b2 = theta.T
  elif form == "additive":
    (a0, a1, a2, b1, b2), b0 = theta.T, np.zeros(len(theta))
  elif form == "decaying":  # exp(a0 + effect * (N/N_REF)^-gamma): the effect's minimum, any N
    (a0, a1, a2, b1, b2, _), b0 = theta.T, np.zeros(len(theta))
  else:
    raise UserError(f"unknown form {form!r}")
  with np.errstate(divide="ignore", invalid="ignore"):
    x, r = a2 / a1, b2 / b1
    ok = (a1 > 0) & (a2 > 0) & (b1 > 0) & (b2 > 0)
    if form == "multiplicative":  # each factor must stay positive at the other's minimum
      ok &= (a0 + a1 * np.log(x) + a1 > 0) & (b0 + b1 * np.log(r) + b1 > 0)
  return np.where(ok, x, np.nan), np.where(ok, r, np.nan)
