"""The Chinchilla law L(N, D) = E + A / N^alpha + B / D^beta and its robust fit.

Fit procedure of the replication (Besiroglu et al. 2024; PAPER.md section 3): in log form
log L_hat = LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b, E = e^e, minimise the
summed Huber loss (delta 1e-3) of log L - log L_hat from every point of a 4,500-point grid, float64,
optionally dropping the k highest losses first. The batched solver is in `chinchilla_fit.py`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from lawsearch.errors import UserError
from lawsearch.laws import runs_table


@dataclasses.dataclass(frozen=True)
class ChinchillaFitInfo:
  """How a Chinchilla law was fitted."""
  objective: float    # summed Huber loss on log L at the optimum
  n_points: int       # points fitted (after dropping)
  n_dropped: int      # highest-loss points dropped
  n_starts: int       # starting points of the grid
  grad_norm: float    # max |gradient| at the optimum


@dataclasses.dataclass(frozen=True)
class ChinchillaLaw:
  """L(N, D) = E + A / N^alpha + B / D^beta (N parameters, D training tokens, L nats/token)."""
  E: float
  A: float
  B: float
  alpha: float
  beta: float
  fit_info: ChinchillaFitInfo | None = None

  def __post_init__(self):
    for name in ("E", "A", "B", "alpha", "beta"):
      value = float(getattr(self, name))
      if not math.isfinite(value):
        raise UserError(f"ChinchillaLaw.{name} must be finite, got {value!r}")
      object.__setattr__(self, name, value)

  @classmethod
  def epoch(cls) -> "ChinchillaLaw":
    """The replication's published fit (Besiroglu et al. 2024)."""
    return cls(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)

  @classmethod
  def hoffmann(cls) -> "ChinchillaLaw":
    """The original Chinchilla fit (Hoffmann et al. 2022, approach 3)."""
    return cls(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

  @property
  def log_params(self) -> np.ndarray:
    """(a, b, e, alpha, beta) = (ln A, ln B, ln E, alpha, beta), float64 [5]."""
    return np.array([math.log(self.A), math.log(self.B), math.log(self.E), self.alpha, self.beta])

  def predict(self, n_params, tokens):
    """Predicted loss at N = n_params, D = tokens (broadcastable; numpy or jax arrays).

    Pure arithmetic, so it traces under jit/vmap/grad; numpy in, numpy out.
    """
    return self.E + self.A * n_params ** -self.alpha + self.B * tokens ** -self.beta

  def compute_optimal(self, flops):
    """(N_opt, D_opt) minimising L under C = 6 N D for budget(s) `flops` (closed form).

    N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6)/N_opt,
    G = (alpha A/(beta B))^(1/(alpha+beta)).
    """
    c = runs_table.check_positive_finite(flops, "flops")
    s = self.alpha + self.beta
    g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / s)
    n = g * (c / 6.0) ** (self.beta / s)
    return n, c / 6.0 / n

  @property
  def objective(self) -> float | None:
    return None if self.fit_info is None else self.fit_info.objective

  @classmethod
  def fit(cls, n_params, tokens, loss, *, drop_highest: int = 0, grid=None,
          **solver_options) -> "ChinchillaLaw":
    """Fit the law to points (N, D, L) by the replication's procedure (see module docstring).

    n_params, tokens, loss: [n] positive. drop_highest: drop this many highest-loss points first.
    grid: starting points [S, 5] in (a, b, e, alpha, beta) order (default: the 4,500-point grid).
    solver_options: passed to `chinchilla_fit.fit_huber`.
    """
    from lawsearch.laws import chinchilla_fit  # pylint: disable=g-import-not-at-top
    n = runs_table.check_positive_finite(n_params, "n_params")
    d = runs_table.check_positive_finite(tokens, "tokens")
    l = runs_table.check_positive_finite(loss, "loss")
    if not n.shape == d.shape == l.shape or n.ndim != 1:
      raise UserError(f"n_params, tokens and loss must be 1-D of one length, got shapes "
                       f"{n.shape}, {d.shape}, {l.shape}")
    if not 0 <= drop_highest < n.size:
      raise UserError(f"drop_highest must be in [0, {n.size}), got {drop_highest}")
    keep = np.sort(np.argsort(l, kind="stable")[:n.size - drop_highest])
    runs_table.check_enough_points(keep.size, 5, "Chinchilla fit")
    grid = chinchilla_fit.default_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    res = chinchilla_fit.fit_huber(np.log(n[keep]), np.log(d[keep]), np.log(l[keep]), grid,
                                   **solver_options)
    a, b, e, alpha, beta = res.theta
    info = ChinchillaFitInfo(objective=res.objective, n_points=int(keep.size),
                             n_dropped=int(drop_highest), n_starts=int(len(grid)),
                             grad_norm=res.grad_norm)
    return cls(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta,
               fit_info=info)

  def __repr__(self):
    return (f"ChinchillaLaw(E={self.E:.5g}, A={self.A:.5g}, B={self.B:.5g}, "
            f"alpha={self.alpha:.4f}, beta={self.beta:.4f})")
