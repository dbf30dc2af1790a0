"""The conditional scaling law's functional forms (PAPER.md section 3), as pure jnp functions.

Each form maps coefficients `theta` [k] and broadcastable arrays x = d/sqrt(N), r = MLP-to-attention
ratio and l_opt = L_opt(N, D) to the predicted loss (same broadcast shape). Natural logs.

    multiplicative: (a0 + a1 ln x + a2/x) * (b0 + b1 ln r + b2/r) * L_opt
    additive:       (a0 + a1 ln x + a2/x) + (b1 ln r + b2/r) + L_opt
    joint:          ((a0 + a1 ln x + a2/x) * (b0 + b1 ln r + b2/r) + c ln x ln r) * L_opt

The joint (non-separable) form is not given by the paper (a **choice**: the multiplicative form plus
one interaction term c ln(x) ln(r)).

Gauge: scaling the x-factor by k and the r-factor by 1/k leaves the multiplicative and joint forms
unchanged, so their coefficients are not identifiable as a set. Fits fix b0 = 1 (`Form.gauge`) and
solve for the others; published laws keep their own b0. Compare optima and predictions, not raw
coefficients.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import numpy as np

from lawsearch.errors import UserError


def u_curve(c0, c1, c2, z):
  """The paper's U-shaped factor c0 + c1 ln z + c2 / z (minimum at z = c2/c1 when c1, c2 > 0)."""
  return c0 + c1 * jnp.log(z) + c2 / z


def multiplicative(theta, x, r, l_opt):
  a0, a1, a2, b0, b1, b2 = (theta[..., i] for i in range(6))
  return u_curve(a0, a1, a2, x) * u_curve(b0, b1, b2, r) * l_opt


def additive(theta, x, r, l_opt):
  a0, a1, a2, b1, b2 = (theta[..., i] for i in range(5))
  return u_curve(a0, a1, a2, x) + u_curve(0.0, b1, b2, r) + l_opt


def joint(theta, x, r, l_opt):
  a0, a1, a2, b0, b1, b2, c = (theta[..., i] for i in range(7))
  inter = c * jnp.log(x) * jnp.log(r)
  return (u_curve(a0, a1, a2, x) * u_curve(b0, b1, b2, r) + inter) * l_opt


@dataclasses.dataclass(frozen=True)
class Form:
  """A named functional form: coefficient names, its pure prediction function, and the
  coefficients a fit holds fixed (index, value) to remove a scale degeneracy."""
  name: str
  names: tuple[str, ...]
  fn: Callable
  gauge: tuple[tuple[int, float], ...] = ()

  @property
  def n_free(self) -> int:
    return len(self.names) - len(self.gauge)

  def free_mask(self) -> np.ndarray:
    mask = np.ones(len(self.names), dtype=bool)
    mask[[i for i, _ in self.gauge]] = False
    return mask

  def expand(self, free):
    """Full coefficients [..., k] from free ones [..., n_free] (jnp; the gauge inserted)."""
    for i, value in self.gauge:
      free = jnp.concatenate([free[..., :i], jnp.full(free.shape[:-1] + (1,), value, free.dtype),
                              free[..., i:]], axis=-1)
    return free


FORMS: dict[str, Form] = {
    "multiplicative": Form("multiplicative", ("a0", "a1", "a2", "b0", "b1", "b2"), multiplicative,
                           gauge=((3, 1.0),)),
    "additive": Form("additive", ("a0", "a1", "a2", "b1", "b2"), additive),
    "joint": Form("joint", ("a0", "a1", "a2", "b0", "b1", "b2", "c"), joint, gauge=((3, 1.0),)),
}


def get_form(name: str) -> Form:
  """The form called `name`; ValueError listing the known forms otherwise."""
  try:
    return FORMS[name]
  except (KeyError, TypeError):
    raise UserError(f"unknown form {name!r}; known forms: {', '.join(FORMS)}") from None
