"""The conditional scaling law's functional forms (PAPER.md section 3), as pure jnp functions.

Each form maps coefficients `theta` [k] and broadcastable arrays x = d/sqrt(N), r = MLP-to-attention
ratio and l_opt = L_opt(N, D) to the predicted loss (same broadcast shape). Natural logs.

    multiplicative: (a0 + a1 ln x + a2/x) * (b0 + b1 ln r + b2/r) * L_opt
    additive:       (a0 + a1 ln x + a2/x) + (b1 ln r + b2/r) + L_opt
    joint:          ((a0 + a1 ln x + a2/x) * (b0 + b1 ln r + b2/r) + c ln x ln r) * L_opt
    decaying:       exp(a0 + (a1 ln x + a2/x + b1 ln r + b2/r) * (N / N_REF)^-gamma) * L_opt

The joint (non-separable) form is not given by the paper (a **choice**: the multiplicative form plus
one interaction term c ln(x) ln(r)). Nor is the decaying form: the paper's coefficients do not
depend on N, but on lawsearch's CPU replication the shape's effect on ln(loss) shrinks with N
(about N^-0.5, experiments/cpu_replication_v2/misfit.py). Its a's are the effect at N = N_REF; it
is the only form that reads `n_params` (N per point; `Form.sized`). Its optimum, a2/a1 and b2/b1,
does not move with N; at one N it is an N-free law (`ConditionalLaw.at`), which the search uses.
It needs an L_opt that does not follow the best shape (joint, a Chinchilla law, a column): each
scale's lowest loss carries that shape's own effect, which shrinks with N too.

Gauge: scaling the x-factor by k and the r-factor by 1/k leaves the multiplicative and joint forms
unchanged, so their coefficients are not identifiable as a set. Fits fix b0 = 1 (`Form.gauge`) and
solve for the others; published laws keep their own b0. Compare optima and predictions, not raw
coefficients.

Mixture of experts. A MoE form is the multiplicative law times a sparsity factor S, at fixed
active parameters: x = d/sqrt(N_active), r the active MLP-to-attention ratio, L_opt that of the
active scale, and `sparsity` [..., 3] = (E experts, top-k, granularity G = dense width / expert
width); a dense MLP is (1, 1, 1), where every S is 1, so the dense law is each form's E = 1 case.
Each S is exp(-(sparsity gain)), positive for any coefficients, and takes its shape from one
paper (our adaptation of each to a factor at fixed active parameters and tokens):

    moe-power:       ln S = -e ln E                          (Clark et al. 2022: a power of E)
    moe-granularity: ln S = -e ln E + g (G^-gamma - 1)       (Krajewski et al. 2024's g / G^gamma)
    moe-leverage:    ln S = -(e ln(E/k) + g1 ln G + g2 ln^2 G)  (Tian et al. 2025: leverage in
                                                              the activation ratio k/E and in G)
    moe-saturating:  ln S = -e ln Ê,  Ê = 1 / (1 / (E - 1 + 1/(1 - w^2)) + w^2)

The last is Ludziejewski et al. 2025's joint law in Clark et al. 2022's transformed expert count Ê
(its start fixed at 1, so Ê(1) = 1): Ê grows like E for E << E_max and saturates at
E_max = 1 / w^2 (w^2, not a free 1/E_max, keeps E_max in [1, inf], where Ê is defined at every E);
w = 0 is moe-power. Their law also lets the N and D exponents move with ln Ê; at a fixed tokens
per parameter that is a gain drifting with N, which the CPU sweep does not show (16x2's relative
gain is 4.6%, 5.1% and 4.3% at 80k, 145k and 320k active), so this form leaves it out.

Dense forms ignore `sparsity`; a MoE form given none predicts the dense law. Every form takes
`n_params` and only the decaying form uses it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import numpy as np

from lawsearch.errors import UserError

N_REF = 1e6  # the decaying form's reference size: its a's are the shape effect there


def u_curve(c0, c1, c2, z):
  """The paper's U-shaped factor c0 + c1 ln z + c2 / z (minimum at z = c2/c1 when c1, c2 > 0)."""
  return c0 + c1 * jnp.log(z) + c2 / z


def multiplicative(theta, x, r, l_opt, sparsity=None, n_params=None):
  a0, a1, a2, b0, b1, b2 = (theta[..., i] for i in range(6))
  return u_curve(a0, a1, a2, x) * u_curve(b0, b1, b2, r) * l_opt


def additive(theta, x, r, l_opt, sparsity=None, n_params=None):
  a0, a1, a2, b1, b2 = (theta[..., i] for i in range(5))
  return u_curve(a0, a1, a2, x) + u_curve(0.0, b1, b2, r) + l_opt


def joint(theta, x, r, l_opt, sparsity=None, n_params=None):
  a0, a1, a2, b0, b1, b2, c = (theta[..., i] for i in range(7))
  inter = c * jnp.log(x) * jnp.log(r)
  return (u_curve(a0, a1, a2, x) * u_curve(b0, b1, b2, r) + inter) * l_opt


def decaying(theta, x, r, l_opt, sparsity=None, n_params=None):
  """n_params None: at N_REF (where gamma does not matter)."""
  a0, a1, a2, b1, b2, gamma = (theta[..., i] for i in range(6))
  effect = u_curve(0.0, a1, a2, x) + u_curve(0.0, b1, b2, r)
  if n_params is not None:
    effect = effect * (n_params / N_REF) ** -gamma
  return jnp.exp(a0 + effect) * l_opt


def _log_gain_power(phi, e, k, g):
  return phi[..., 0] * jnp.log(e)


def _log_gain_granularity(phi, e, k, g):
  return phi[..., 0] * jnp.log(e) - phi[..., 1] * (g ** -phi[..., 2] - 1.0)


def _log_gain_leverage(phi, e, k, g):
  return phi[..., 0] * jnp.log(e / k) + phi[..., 1] * jnp.log(g) + phi[..., 2] * jnp.log(g) ** 2


def _log_gain_saturating(phi, e, k, g):
  u = phi[..., 1] ** 2  # 1 / E_max
  return phi[..., 0] * jnp.log(1.0 / (1.0 / (e - 1.0 + 1.0 / (1.0 - u)) + u))


def sparse(log_gain: Callable) -> Callable:
  """The MoE form: the multiplicative law (theta[..., :6]) times exp(-log_gain(theta[..., 6:],
  E, k, G)); no sparsity given: the dense law."""

  def fn(theta, x, r, l_opt, sparsity=None, n_params=None):
    dense = multiplicative(theta[..., :6], x, r, l_opt)
    if sparsity is None:
      return dense
    sparsity = jnp.asarray(sparsity)
    e, k, g = sparsity[..., 0], sparsity[..., 1], sparsity[..., 2]
    return dense * jnp.exp(-log_gain(theta[..., 6:], e, k, g))

  return fn


@dataclasses.dataclass(frozen=True)
class Form:
  """A named functional form: coefficient names, its pure prediction function, and the
  coefficients a fit holds fixed (index, value) to remove a scale degeneracy."""
  name: str
  names: tuple[str, ...]
  fn: Callable
  gauge: tuple[tuple[int, float], ...] = ()
  base: str | None = None  # a MoE form: the dense form its first coefficients belong to
  sized: bool = False       # its prediction depends on N (`n_params`), not only on x, r, L_opt

  @property
  def is_moe(self) -> bool:
    return self.base is not None

  @property
  def sparsity_names(self) -> tuple[str, ...]:
    """The sparsity factor's coefficients (none for a dense form)."""
    return self.names[len(FORMS[self.base].names):] if self.is_moe else ()

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
    "decaying": Form("decaying", ("a0", "a1", "a2", "b1", "b2", "gamma"), decaying, sized=True),
}
_MULTIPLICATIVE = FORMS["multiplicative"].names
FORMS.update({
    "moe-power": Form("moe-power", _MULTIPLICATIVE + ("e",), sparse(_log_gain_power),
                      gauge=((3, 1.0),), base="multiplicative"),
    "moe-granularity": Form("moe-granularity", _MULTIPLICATIVE + ("e", "g", "gamma"),
                            sparse(_log_gain_granularity), gauge=((3, 1.0),),
                            base="multiplicative"),
    "moe-leverage": Form("moe-leverage", _MULTIPLICATIVE + ("e", "g1", "g2"),
                         sparse(_log_gain_leverage), gauge=((3, 1.0),), base="multiplicative"),
    "moe-saturating": Form("moe-saturating", _MULTIPLICATIVE + ("e", "w"),
                           sparse(_log_gain_saturating), gauge=((3, 1.0),),
                           base="multiplicative"),
})
MOE_FORMS = tuple(name for name, form in FORMS.items() if form.is_moe)


def get_form(name: str) -> Form:
  """The form called `name`; ValueError listing the known forms otherwise."""
  try:
    return FORMS[name]
  except (KeyError, TypeError):
    raise UserError(f"unknown form {name!r}; known forms: {', '.join(FORMS)}") from None
