"""The conditional (architecture-aware) scaling law L(x, r | N, D) of PAPER.md section 3.

x = d_model / sqrt(N) (N non-embedding parameters), r = MLP-to-attention parameter ratio,
L_opt(N, D) the loss of the best architecture at that scale. Forms are in `forms.py`.

    >>> law = ConditionalLaw.paper("80m-297m")
    >>> [round(v, 3) for v in law.optimum()]
    [0.08, 1.032]
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd

from lawsearch import inputs, paths, rundir
from lawsearch.errors import UserError
from lawsearch.laws import forms, l_opt as l_opt_lib, optimum as optimum_lib, runs_table
from lawsearch.laws import levenberg_marquardt as lm
from lawsearch.laws.precision import float64
from lawsearch.laws.runs_table import RunsTable

# Published coefficient sets (PAPER.md section 3), a0, a1, a2, b0, b1, b2.
_PAPER = {
    "80m-297m": (2.697, 0.0974, 0.0078, 0.3870, 0.0063, 0.0065),  # optimum 0.08, 1.032: Panda-1B
    "1b-only": (2.319, 0.238, 0.0176, 0.5104, 0.0051, 0.0062),    # optimum 0.074, 1.229: Panda-3B-o
}
DEFAULT_R_RANGE = (0.5, 5.0)  # the paper fits only architectures with r in [0.5, 5]


@dataclasses.dataclass(frozen=True)
class FitInfo:
  """How a law was fitted (absent for named laws)."""
  objective: float                      # sum of (weighted) squared residuals of the raw loss
  mse: float                            # mean squared residual of the fitted points (unweighted)
  n_points: int                         # rows fitted (after the r filter)
  n_excluded: int                       # rows removed by the r filter
  r_range: tuple[float, float] | None   # the r filter (None: off)
  l_opt: str                            # where L_opt came from
  n_starts: int
  iterations: int                       # LM iterations of the best start
  grad_norm: float                      # scaled gradient max_j |J_j.res|/(|J_j||res|) at the end


@dataclasses.dataclass(frozen=True)
class ConditionalLaw:
  """A conditional law: a form and its coefficients (in `forms.FORMS[form].names` order)."""
  form: str
  params: tuple[float, ...]
  name: str | None = None
  fit_info: FitInfo | None = None

  def __post_init__(self):
    spec = forms.get_form(self.form)
    params = tuple(float(p) for p in np.ravel(self.params))
    if len(params) != len(spec.names):
      raise UserError(f"{self.form} law takes {len(spec.names)} coefficients {spec.names}, "
                       f"got {len(params)}")
    if not all(np.isfinite(params)):
      raise UserError(f"coefficients must be finite, got {params}")
    object.__setattr__(self, "params", params)

  # -- construction ---------------------------------------------------------------------------
  @classmethod
  def paper(cls, name: str) -> "ConditionalLaw":
    """A published multiplicative law: "80m-297m" or "1b-only"."""
    if name not in _PAPER:
      raise UserError(f"unknown paper law {name!r}; known: {', '.join(_PAPER)}")
    return cls("multiplicative", _PAPER[name], name=f"paper:{name}")

  @classmethod
  def from_coefficients(cls, form: str, coefficients: Mapping[str, float], **kw):
    """A law from a name -> value mapping (every coefficient of the form, nothing else)."""
    names = forms.get_form(form).names
    if set(coefficients) != set(names):
      raise UserError(f"{form} law needs coefficients {names}, got {sorted(coefficients)}")
    return cls(form, tuple(coefficients[n] for n in names), **kw)

  @property
  def coefficients(self) -> dict[str, float]:
    return dict(zip(forms.get_form(self.form).names, self.params))

  # -- prediction -----------------------------------------------------------------------------
  def predict_xr(self, x, r, l_opt, sparsity=None, n_params=None):
    """Predicted loss at x = d/sqrt(N), r, l_opt (broadcastable arrays or floats) and, for a MoE
    form, sparsity [..., 3] = (experts, top-k, granularity) (None: a dense MLP); n_params: N,
    which only the decaying form reads (needed there unless its gamma is 0: `at`).

    Pure jnp: traceable under jit, vmap and grad; float64 inside `lawsearch.laws.float64()`.
    """
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    spec = forms.FORMS[self.form]
    if spec.sized and n_params is None and self.coefficients["gamma"] != 0:
      raise UserError(f"the {self.form} law's shape effect depends on N: give n_params, or take "
                      "the law at one size with law.at(N)")
    theta = jnp.asarray(self.params)
    return spec.fn(theta, jnp.asarray(x), jnp.asarray(r), jnp.asarray(l_opt),
                   None if sparsity is None else jnp.asarray(sparsity),
                   None if n_params is None else jnp.asarray(n_params))

  def at(self, n_params: float) -> "ConditionalLaw":
    """The law at one size N: itself for a form that does not read N; for the decaying form the
    same law with its shape coefficients scaled by (N / N_REF)^-gamma and gamma 0 (N-free)."""
    if not forms.FORMS[self.form].sized:
      return self
    c = self.coefficients
    factor = (float(n_params) / forms.N_REF) ** -c["gamma"]
    scaled = {k: (v * factor if k in ("a1", "a2", "b1", "b2") else v) for k, v in c.items()}
    return dataclasses.replace(self, params=tuple({**scaled, "gamma": 0.0}.values()),
                               name=f"{self.name or self.form} at N={float(n_params):.4g}")

  def predict(self, df: pd.DataFrame, l_opt=None) -> np.ndarray:
    """Predicted loss per row of `df` (columns n_params, d_model, mlp_attn_ratio; a MoE form reads
    each row's experts, top-k and granularity, `RunsTable.sparsity`), float64 [rows].

    l_opt: see `lawsearch.laws.l_opt` (None: the `l_opt` column, else the lowest loss per scale).
    """
    table = RunsTable.of(df, "predict")
    x, r = x_and_r(table, "predict")
    lo = l_opt_lib.for_table(table, l_opt)
    with float64():
      return np.asarray(self.predict_xr(x, r, lo, table.sparsity, table.n), dtype=np.float64)

  def optimum(self) -> tuple[float, float]:
    """(x*, r*) minimising the law: a2/a1, b2/b1 for the separable forms, numeric for joint."""
    x, r = optimum_lib.optimum_batch(self.form, self.params)
    if not (np.isfinite(x[0]) and np.isfinite(r[0])):
      coefficients = ", ".join(f"{k}={v:.4g}" for k, v in self.coefficients.items())
      raise UserError(f"this {self.form} law has no interior minimum ({coefficients}): its loss "
                       "does not curve up on both sides in d/sqrt(N) and in r; fit it on more "
                       "runs whose d/sqrt(N) and r span both sides of the best ones")
    return float(x[0]), float(r[0])

  # -- serialisation --------------------------------------------------------------------------
  def to_json(self, path: str | os.PathLike | None = None) -> str:
    """JSON text (form, coefficients, name, fit info); also written to `path` when given."""
    doc: dict[str, Any] = {"form": self.form, "coefficients": self.coefficients, "name": self.name}
    if self.fit_info is not None:
      doc["fit"] = dataclasses.asdict(self.fit_info)
    text = json.dumps(doc, indent=2)
    if path is not None:
      paths.write_text(path, text + "\n")
    return text

  @classmethod
  def from_json(cls, source: str | os.PathLike) -> "ConditionalLaw":
    """A law from JSON text or from a file holding it (as written by `to_json`)."""
    text = str(source)
    if text.lstrip().startswith("{"):
      where = "law JSON"
      try:
        doc = json.loads(text)
      except json.JSONDecodeError as e:
        raise UserError(f"law JSON is not JSON ({e})") from None
    else:
      where = f"law file {text}"
      doc = rundir.read_file(text, "law")
    inputs.require(doc, where, {"form": "string", "coefficients": "object"})
    bad = {k: v for k, v in doc["coefficients"].items() if not isinstance(v, (int, float))
           or isinstance(v, bool) or not math.isfinite(v)}
    if bad:
      raise UserError(f"{where}: coefficients must be finite numbers, got {bad}")
    try:
      info = doc.get("fit")
      if info is not None:
        info = FitInfo(**{**info, "r_range": None if info["r_range"] is None
                          else tuple(info["r_range"])})
      law = cls.from_coefficients(doc["form"], doc["coefficients"], name=doc.get("name"),
                                  fit_info=info)
    except (KeyError, TypeError) as e:
      raise UserError(f"{where}: its 'fit' record is malformed ({e}); write it with "
                      "`lawsearch fit --out`") from None
    except UserError as e:
      raise UserError(f"{where}: {e}") from None
    law.check_plausible(where)
    return law

  def check_plausible(self, where: str) -> None:
    """A UserError (naming `where`) when the law is not a loss law over d/sqrt(N) in [0.02, 1]
    and r in [0.25, 20]: a relative loss (L / L_opt) there that is not finite, not positive or
    above 1e3; a warning when it has no interior minimum (the search then runs to its grid's
    edge; `fit` flags the same)."""
    x, r = np.meshgrid(np.geomspace(0.02, 1.0, 25), np.geomspace(0.25, 20.0, 25))
    law = self.at(forms.N_REF)  # a law that reads N: at its reference size
    with float64():
      rel = np.asarray(law.predict_xr(x.ravel(), r.ravel(), 1.0), dtype=np.float64)
    bad = ~np.isfinite(rel) | (rel <= 0) | (rel > 1e3)
    if bad.any():
      worst = int(np.argmax(bad))
      raise UserError(f"{where}: the {self.form} law predicts L / L_opt = {rel[worst]:.3g} at "
                      f"d/sqrt(N) = {x.ravel()[worst]:.3g}, r = {r.ravel()[worst]:.3g}; a loss law "
                      "stays positive and finite there: check its coefficients")
    if forms.get_form(self.form).is_moe:  # the sparsity factor over E, top-k and G
      grid = np.stack(np.meshgrid([1, 4, 16, 64, 256], [1, 2, 8], [1, 2, 4, 8, 16]), -1)
      grid = grid.reshape(-1, 3).astype(np.float64)
      with float64():
        factor = np.asarray(self.predict_xr(0.1, 1.0, 1.0, grid) / self.predict_xr(0.1, 1.0, 1.0))
      bad = ~np.isfinite(factor) | (factor < 1e-3) | (factor > 1e3)
      if bad.any():
        e, k, g = grid[int(np.argmax(bad))]
        raise UserError(f"{where}: the {self.form} law's sparsity factor is "
                        f"{factor[int(np.argmax(bad))]:.3g} at {e:g} experts, top-{k:g}, "
                        f"granularity {g:g}; a loss law keeps it within [1e-3, 1e3] there: "
                        "check its coefficients")
    try:
      self.optimum()
    except UserError as e:
      warnings.warn(f"{where}: {e}", UserWarning, stacklevel=2)

  # -- fitting --------------------------------------------------------------------------------
  @classmethod
  def fit(cls, df: pd.DataFrame, form: str = "multiplicative", l_opt=None,
          r_range: tuple[float, float] | None = DEFAULT_R_RANGE, n_starts: int = 8,
          seed: int = 0, maxiter: int = 200, tol: float = 1e-6,
          start: "ConditionalLaw | None" = None) -> "ConditionalLaw":
    """Least-squares fit (jaxopt Levenberg-Marquardt, float64, `n_starts` starts, or the one
    start `start`, a law of the same form near the answer) on `df`.

    df columns: n_params (non-embedding), d_model, mlp_attn_ratio, loss; tokens (or scale) when
    L_opt is empirical or comes from a Chinchilla law; weight (optional): each row's least-squares
    weight, 1 / its loss's variance (`laws.noise` gives it). l_opt: see `lawsearch.laws.l_opt`.
    r_range: keep rows with r inside (inclusive); None keeps all. Raises ValueError on bad input
    and when the best start does not converge: its scaled gradient max_j |J_j.res|/(|J_j||res|)
    (MINPACK's gtol measure) must end below `tol` (reporting the best objective reached).
    """
    spec = forms.get_form(form)
    table = RunsTable.of(df, "fitting a conditional law")
    x, r, lo, loss, w, keep = prepare(table, l_opt, r_range, len(spec.names))
    sparsity, n = table.sparsity[keep], table.n[keep]
    check_sparsity(spec, sparsity)
    if spec.sized and l_opt_lib.describe(table, l_opt) == "empirical":
      raise UserError(f"the {form} form cannot take L_opt as each scale's lowest loss: that loss "
                      "carries the best shape's own effect, which shrinks with N too, and biases "
                      "gamma; use l_opt='joint' (`--l-opt joint`), a Chinchilla law or a column")
    if spec.sized and len(set(table.scale[keep])) < 2:
      raise UserError(f"the {form} form's gamma (how the shape effect changes with N) needs runs "
                      "at two or more scales; fit a form that does not read N on one scale")
    starts = None if start is None else np.asarray([start.params], dtype=np.float64)
    res = lm.fit(form, x, r, lo, loss, sparsity=sparsity, n_params=n, weights=w, starts=starts,
                 n_starts=n_starts, seed=seed, maxiter=maxiter, tol=tol)
    if not res.converged:
      raise UserError(f"the {form} fit did not converge in {maxiter} iterations: best objective "
                       f"(sum of squares) {res.sse:.6g} with scaled gradient {res.grad_norm:.3g} "
                       f"> tol {tol:g}; raise maxiter or check the data")
    with float64():
      pred = np.asarray(cls(form, tuple(res.theta)).predict_xr(x, r, lo, sparsity, n),
                        dtype=np.float64)
    info = FitInfo(objective=res.sse, mse=float(np.mean((pred - loss) ** 2)),
                   n_points=int(loss.size), n_excluded=int((~keep).sum()),
                   r_range=None if r_range is None else tuple(r_range),
                   l_opt=l_opt_lib.describe(table, l_opt), n_starts=n_starts,
                   iterations=res.iterations, grad_norm=res.grad_norm)
    return cls(form, tuple(res.theta), name=None, fit_info=info)


def check_sparsity(spec: forms.Form, sparsity: np.ndarray) -> None:
  """UserError when the fitted rows cannot determine `spec`'s sparsity factor: a MoE form needs
  more distinct (E, top-k, G) than it has sparsity coefficients, and two granularity
  coefficients need three granularities."""
  if not spec.is_moe:
    return
  configs = sorted({tuple(float(v) for v in row) for row in np.round(sparsity, 6)})
  granularities = {row[2] for row in configs}
  needed = len(spec.sparsity_names)
  if len(configs) <= needed or (needed > 1 and len(granularities) < 3):
    have = ", ".join("({:g}, {:g}, {:g})".format(*c) for c in configs)
    raise UserError(
        f"the {spec.name} form's sparsity factor ({', '.join(spec.sparsity_names)}) needs runs at "
        f"more than {needed} (experts, top-k, granularity) settings, three granularities among "
        f"them where it has two granularity terms; the table has {have}: add MoE runs "
        "(`lawsearch sweep --config=configs/sweep.py:...`, an arch with n_experts > 1) or fit "
        "moe-power")


def x_and_r(df: pd.DataFrame | RunsTable, what: str) -> tuple[np.ndarray, np.ndarray]:
  """(d/sqrt(N), r), float64 [rows] of a table (checked once); UserError naming `what` when a
  column is missing."""
  table = RunsTable.of(df, what)
  runs_table.check_columns(table.frame, ["n_params", "d_model", "mlp_attn_ratio"], what)
  return table.x, table.r


def prepare(df: pd.DataFrame | RunsTable, l_opt, r_range, n_coefficients: int):
  """(x, r, l_opt, loss, weight, keep): float64 arrays of the rows to fit, after the r filter
  (weight: the `weight` column, else ones), and `keep`, which rows of `df` those are.

  L_opt is resolved on the whole table (the lowest loss of a scale counts every architecture).
  """
  table = RunsTable.of(df, "fitting a conditional law")
  loss = table.column("loss", "fitting a conditional law")
  x, r = x_and_r(table, "fitting a conditional law")
  lo = l_opt_lib.for_table(table, l_opt)
  keep = np.ones(len(table), dtype=bool)
  if r_range is not None:
    lo_r, hi_r = r_range
    if not 0 < lo_r < hi_r:
      raise UserError(f"r_range must be (low, high) with 0 < low < high, got {r_range!r}")
    keep = (r >= lo_r) & (r <= hi_r)
  runs_table.check_enough_points(int(keep.sum()), n_coefficients,
                            f"conditional fit (after the r filter {r_range})")
  return x[keep], r[keep], lo[keep], loss[keep], table.weight[keep], keep
