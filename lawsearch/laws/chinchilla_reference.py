"""The replication's Chinchilla objective in plain numpy, with its analytic gradient.

The independent reference the JAX fit (`chinchilla_fit.py`) is tested against, and the objective
the scipy L-BFGS-B peer of experiments/bench_chinchilla_fit.py minimises:

    sum_i Huber_delta(log L_i - LSE(a - alpha log N_i, b - beta log D_i, e)),   theta = (a, b, e, alpha, beta)
"""

from __future__ import annotations

import numpy as np

DELTA = 1e-3  # Huber delta of the replication (Besiroglu et al. 2024)


def huber_objective_and_grad(theta, log_n, log_d, log_l, delta: float = DELTA):
  """(objective, gradient [5]) at theta, float64 numpy, in one pass over the points."""
  a, b, e, alpha, beta = theta
  z = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
  top = z.max(axis=0)
  w = np.exp(z - top)
  total = w.sum(axis=0)
  resid = log_l - top - np.log(total)
  p = w / total  # d LSE / d z
  dr = -np.clip(resid, -delta, delta)  # d Huber / d prediction
  absr = np.abs(resid)
  value = np.where(absr <= delta, 0.5 * resid**2, delta * (absr - 0.5 * delta)).sum()
  grad = np.array([dr @ p[0], dr @ p[1], dr @ p[2], -(dr * log_n) @ p[0], -(dr * log_d) @ p[1]])
  return value, grad
