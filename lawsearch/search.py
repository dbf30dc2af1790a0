"""Algorithm 1 of the paper: the most inference-efficient architecture that meets a loss target.

    result = search(ConditionalLaw.paper("80m-297m"), n_params=1e9, tokens=1e11, n_layers=16,
                    head_dim=64, baseline="llama3.2-1b")
    result.panda, result.surefire, result.algorithm1, result.candidates, result.pareto

`search` runs the steps of PAPER.md section 4 in order, one function each:
1. `l_opt_at_budget`: L_opt(N, D) from a number or a `ChinchillaLaw` (fitted on smaller models'
   runs by `laws.l_opt.fit_chinchilla` when unknown), or none: losses are then relative
   (L / L_opt), which is all a target given by a baseline architecture needs.
2. Over (d_model, r), at step 2's GQA (the baseline's, else 4):
   `score_candidates`: every integer candidate within the parameter tolerance, at every GQA
     scored, with its predicted loss (the law vmapped in float64) and efficiency (vectorised);
   `law_optimum`: the law's analytic optimum (x*, r*) and Panda, its loss-argmin;
   `target_loss`: L_t, given or a baseline's predicted loss, no lower than the law's minimum;
   `solve_continuous`: max I(x, r) s.t. L(x, r) <= L_t per GQA in real-valued shapes (jaxopt), a
     check on the integer candidates;
   `step2_picks`: the most efficient candidates that meet L_t, Algorithm 1's step-2 pick first.
3. `gqa_step`: `gqa_local_search` from each step-2 pick: the exact-parameter GQA values in ascending order
   from its GQA, stopping at the first whose loss is above the pick's (only with a `gqa_loss`
   evaluator; GQA is not in the law, so without one it is assumed loss-neutral, and the result
   says so). Algorithm 1's own pick (`algorithm1`) is the most efficient variant accepted.
Then the front and the recommendation:
   `pareto_front`: predicted loss against efficiency over every candidate step 2 scored and
     step 3 visited, under the same GQA assumption (loss-neutral up to max_gqa; with an
     evaluator, only step 2's GQA and the variants it accepted);
   `most_efficient_meeting_target`: Surefire, the recommendation, on the front by construction.
     Step 3 varies GQA only at exact parameter count from a few step-2 shapes, whose head counts
     may allow few GQA values, so Algorithm 1's pick can sit inside the front.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from lawsearch import arch, cost, inputs
from lawsearch.errors import UserError
from lawsearch.laws import FORMS, ConditionalLaw, float64, l_opt as l_opt_lib

# Shape columns of the candidates table, in ArchSpec order.
SHAPE_COLUMNS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim",
                 "vocab_size", "tie_embeddings")


# -- efficiency measures -------------------------------------------------------------------------
class EfficiencyMeasure(Protocol):
  """An inference-efficiency measure I_N(P): higher is better."""

  label: str

  def many(self, specs: Sequence[arch.ArchSpec]) -> np.ndarray:
    """Efficiency of each spec, float64 [len(specs)]; NaN where it cannot be scored."""


@dataclasses.dataclass(frozen=True)
class RooflineEfficiency:
  """Roofline output tokens/s of `lawsearch.cost` for one serving scenario (the default measure)."""

  hardware: str | cost.Hardware = "a100-40gb"  # a cost.HARDWARE name, or a measured one
  batch: int = 64
  input_len: int = 4096
  output_len: int = 1024
  efficiency: cost.Efficiency = cost.Efficiency()
  memory_fraction: float = 0.9
  bytes_per_element: float = 2  # of the served weights and KV cache (bf16; 4 for float32)

  def __post_init__(self):
    cost.check_scenario(self.batch, self.input_len, self.output_len)
    if not 0 < self.memory_fraction <= 1:
      raise UserError(f"memory_fraction must be in (0, 1], got {self.memory_fraction!r}")
    if not self.bytes_per_element > 0:
      raise UserError(f"bytes_per_element must be > 0, got {self.bytes_per_element!r}")

  @property
  def chip(self) -> cost.Hardware:
    return self.hardware if isinstance(self.hardware, cost.Hardware) else cost.hardware(
        self.hardware)

  @property
  def label(self) -> str:
    dtype = {2: "", 4: ", float32"}.get(self.bytes_per_element, f", {self.bytes_per_element} B")
    return (f"roofline output tokens/s, {self.chip.name}, batch {self.batch}, "
            f"{self.input_len} in / {self.output_len} out{dtype}")

  def rate_and_memory(self, shapes: arch.ShapeArrays, xp=np):
    """(output tokens/s ignoring memory, memory needed / memory allowed) of stacked or relaxed
    shapes; numpy or jax.numpy (`xp`), differentiable in the relaxed shape."""
    hw = self.chip
    prefill_s, decode_s = cost.roofline_times(
        shapes, hw, self.batch, self.input_len, self.output_len,
        bytes_per_element=self.bytes_per_element, efficiency=self.efficiency, xp=xp)
    seq_len = self.input_len + self.output_len
    memory = cost.serving_memory_bytes(shapes, self.batch, seq_len, self.bytes_per_element)
    rate = self.batch * self.output_len / (prefill_s + decode_s)
    return rate, memory / (self.memory_fraction * hw.hbm_bytes)

  def on_shapes(self, shapes: arch.ShapeArrays, xp=np):
    """Output tokens/s; 0 where the weights plus the batch's KV cache do not fit."""
    rate, memory_use = self.rate_and_memory(shapes, xp)
    return xp.where(memory_use <= 1.0, rate, 0.0)

  def many(self, specs):
    return np.asarray(self.on_shapes(arch.stack(specs)), np.float64)


@dataclasses.dataclass(frozen=True)
class MeasuredEfficiency:
  """Measured throughput (e.g. `lawsearch bench` output) looked up by shape; NaN if unmeasured."""

  table: dict  # shape tuple (n_layers, d_model, n_heads, n_kv_heads, head_dim, ffn_dim) -> value
  label: str = "measured output tokens/s"

  @classmethod
  def from_records(cls, records: Sequence[dict], key: str = "output_tokens_per_s",
                   batch: int | None = None, label: str | None = None) -> "MeasuredEfficiency":
    """From dicts holding the six shape fields and `key`, as `lawsearch bench --out` writes them;
    only those at `batch` if given; the mean is kept for repeated shapes. A record that is not
    an object, a shape field that is not an integer, a batch that is not one, or a throughput
    that is not a finite positive number is a UserError naming the record."""
    integer, positive = inputs.ARGUMENTS["integer"][0], inputs.ARGUMENTS["positive"][0]
    for i, rec in enumerate(records):
      if not isinstance(rec, dict):
        raise UserError(f"measurement {i} is {type(rec).__name__} {rec!r}, not a record (an "
                        "object with the shape fields and the throughput)"[:300])
      bad = [f for f in SHAPE_COLUMNS[:6] + ("batch",) if f in rec and not integer(rec[f])]
      if bad or (key in rec and not positive(rec[key])):
        what = f"{bad[0]}={rec[bad[0]]!r} is not an integer" if bad else (
            f"{key}={rec[key]!r} is not a finite number > 0")
        raise UserError(f"measurement {i}: {what}")
    if batch is not None:
      records = [r for r in records if r.get("batch") == batch]
      if not records:
        raise UserError(f"no measurement at batch {batch}; measure it with `lawsearch bench "
                         f"--batch {batch} --out FILE`")
    values: dict = {}
    for rec in records:
      missing = [f for f in SHAPE_COLUMNS[:6] + (key,) if f not in rec]
      if missing:
        raise UserError(f"measurement record lacks {missing}: {rec}")
      values.setdefault(tuple(int(rec[f]) for f in SHAPE_COLUMNS[:6]), []).append(float(rec[key]))
    at = f" at batch {batch}" if batch is not None else ""
    return cls({k: float(np.mean(v)) for k, v in values.items()}, label or f"measured {key}{at}")

  @classmethod
  def from_file(cls, path: str, batch: int | None = None) -> "MeasuredEfficiency":
    """`from_records` on a JSON list of records (`lawsearch bench --out`); errors name the file."""
    records = inputs.read_json(path, "measurements file", "list")
    try:
      return cls.from_records(records, batch=batch)
    except UserError as e:
      raise UserError(f"measurements file {path}: {e}") from None

  def many(self, specs):
    return np.array([self.table.get(_shape_key(s), np.nan) for s in specs], np.float64)


@dataclasses.dataclass(frozen=True)
class CallableEfficiency:
  """Any function ArchSpec -> efficiency (higher is better)."""

  fn: Callable[[arch.ArchSpec], float]
  label: str = "user efficiency"

  def many(self, specs):
    return np.array([float(self.fn(s)) for s in specs], np.float64)


def _shape_key(spec: arch.ArchSpec) -> tuple:
  return (spec.n_layers, spec.d_model, spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.ffn_dim)


def _table_keys(table: pd.DataFrame) -> list[tuple]:
  """`_shape_key` of every row of a candidates table, read off its columns."""
  return list(table[list(SHAPE_COLUMNS[:6])].itertuples(index=False, name=None))


def as_efficiency(efficiency) -> EfficiencyMeasure:
  if efficiency is None:
    return RooflineEfficiency()
  if hasattr(efficiency, "many"):
    return efficiency
  if callable(efficiency):
    return CallableEfficiency(efficiency)
  raise UserError("efficiency must be an EfficiencyMeasure (RooflineEfficiency, "
                   f"MeasuredEfficiency, ...) or a callable ArchSpec -> float, got {efficiency!r}")


# -- predicted loss -------------------------------------------------------------------------------
def predict_loss(law: ConditionalLaw, specs: Sequence[arch.ArchSpec], tokens: float,
                 l_opt=None) -> np.ndarray:
  """The law's predicted loss of each spec, float64 [len(specs)], all evaluated together. A
  mixture of experts is taken at its active size (x = d/sqrt(N_active), its active r, L_opt at
  N_active) with its sparsity (experts, top-k, granularity), which a MoE form prices and a dense
  form ignores; a law that reads N (the decaying form) at each spec's N."""
  shapes = arch.stack(specs)
  moe = np.array([s.is_moe for s in specs])
  n = shapes.active_non_embedding_params
  r = np.where(moe, [s.mlp_attn_ratio for s in specs], shapes.mlp_attn_ratio)
  sparsity = np.array([(s.n_experts, s.top_k, s.granularity) if s.is_moe else (1, 1, 1)
                       for s in specs], np.float64)
  lo = l_opt_lib.at(l_opt, n, tokens)
  with float64():
    return np.asarray(law.predict_xr(shapes.d_model / n ** 0.5, r, lo, sparsity, n), np.float64)


# -- the continuous problem ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ContinuousOptimum:
  """max efficiency(x, r) s.t. L(x, r) <= target at one GQA, in real-valued shapes."""

  gqa: int
  x: float
  r: float
  predicted_loss: float
  efficiency: float  # 0 when the weights plus the batch's KV cache do not fit
  feasible: bool     # meets the target (to 1e-6) and fits in memory


def solve_continuous(law: ConditionalLaw, measure: RooflineEfficiency, *, n_params: float,
                     n_layers: int, head_dim: int, vocab_size: int, gqas: Sequence[int],
                     target: float, l_opt: float, x_bounds: tuple[float, float],
                     r_bounds: tuple[float, float]) -> list[ContinuousOptimum]:
  """Solve the relaxed problem at each GQA (jaxopt, float64).

  Variables (ln x, ln r) in the box. Objective: -ln(tokens/s) plus mu * (relu(L/L_t - 1)^2 +
  relu(memory use - 1)^2), minimised by jaxopt.ProjectedGradient for mu = 1e2 .. 1e8 in turn, each
  warm-started from the last (a penalty continuation: the optimum lies on L = L_t, since
  efficiency rises with x and r). Compiled once per (form, measure, depth, head_dim, vocabulary);
  GQA values are solved one call each (vmapping jaxopt's loops over them ran far slower here).
  """
  import jax.numpy as jnp

  with float64():
    solve = _continuous_solver(law.form, measure, n_layers, head_dim, vocab_size)
    args = (jnp.asarray(law.params), float(n_params), float(target), float(l_opt),
            jnp.log(jnp.array([x_bounds[0], r_bounds[0]])),
            jnp.log(jnp.array([x_bounds[1], r_bounds[1]])))
    u = np.array([np.asarray(solve(float(g), *args)) for g in gqas])
    x, r = np.exp(u[:, 0]), np.exp(u[:, 1])
    loss = np.asarray(law.predict_xr(x, r, l_opt))
    shapes = arch.relaxed(n_params, n_layers=n_layers, head_dim=head_dim, x=x, r=r,
                          gqa=np.asarray(gqas, np.float64), vocab_size=vocab_size)
    rate = measure.on_shapes(shapes)
  feasible = (loss <= target * (1 + 1e-6)) & (rate > 0)
  return [ContinuousOptimum(int(gi), float(xi), float(ri), float(li), float(ei), bool(fi))
          for gi, xi, ri, li, ei, fi in zip(gqas, x, r, loss, rate, feasible)]


@functools.lru_cache(maxsize=16)
def _continuous_solver(form: str, measure: RooflineEfficiency, n_layers: int, head_dim: int,
                       vocab_size: int):
  """The jitted solver of `solve_continuous` for one static configuration."""
  import jax
  import jax.numpy as jnp
  import jaxopt
  from jaxopt.projection import projection_box

  law_fn = FORMS[form].fn

  def objective(u, theta, n_params, target, l_opt, g, mu):
    x, r = jnp.exp(u[0]), jnp.exp(u[1])
    shapes = arch.relaxed(n_params, n_layers=n_layers, head_dim=head_dim, x=x, r=r, gqa=g,
                          vocab_size=vocab_size)
    rate, memory_use = measure.rate_and_memory(shapes, xp=jnp)
    excess = jax.nn.relu(law_fn(theta, x, r, l_opt) / target - 1.0)
    return -jnp.log(rate) + mu * (excess**2 + jax.nn.relu(memory_use - 1.0) ** 2)

  solver = jaxopt.ProjectedGradient(fun=objective, projection=projection_box, maxiter=200,
                                    tol=1e-10)

  def solve_one(g, theta, n_params, target, l_opt, lower, upper):
    def stage(u, mu):
      res = solver.run(u, hyperparams_proj=(lower, upper), theta=theta, n_params=n_params,
                       target=target, l_opt=l_opt, g=g, mu=mu)
      return res.params, None

    u, _ = jax.lax.scan(stage, (lower + upper) / 2, jnp.array([1e2, 1e4, 1e6, 1e8]))
    return u

  return jax.jit(solve_one)


# -- Pareto front --------------------------------------------------------------------------------
def pareto_mask(loss: np.ndarray, efficiency: np.ndarray) -> np.ndarray:
  """True for points no other point beats on both (lower loss, higher efficiency).

  Points with a non-finite or zero efficiency (unmeasured, or not fitting in memory) are never on
  the front.
  """
  scored = np.isfinite(efficiency) & (efficiency > 0)
  order = np.lexsort((-efficiency, loss))  # by loss, ties: most efficient first
  best = -np.inf
  mask = np.zeros(loss.shape, bool)
  for i in order:
    if scored[i] and efficiency[i] > best:
      mask[i] = True
      best = efficiency[i]
  return mask


# -- the search ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GqaStep:
  """One step of the GQA local search."""

  start: int         # which step-2 shape this step varies (0 = the most efficient)
  gqa: int
  spec: arch.ArchSpec
  efficiency: float
  loss: float | None  # from the gqa_loss evaluator; None when GQA is assumed loss-neutral
  accepted: bool


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """Everything the search found; `candidates` holds every feasible shape with its scores."""

  law: ConditionalLaw
  measure: EfficiencyMeasure
  l_opt: object                        # as given to `search`
  n_params: float
  tokens: float
  target: float
  optimum: tuple[float, float]         # the law's analytic (x*, r*)
  panda: arch.ArchSpec
  baseline: arch.ArchSpec | None
  candidates: pd.DataFrame             # shape columns, n_params, gqa, r, x, loss, efficiency, ...
  continuous: list[ContinuousOptimum]
  algorithm1_step2: arch.ArchSpec      # step 2's pick at the step-2 GQA
  gqa_trace: list[GqaStep]             # step 3, for each of the `gqa_starts` best step-2 shapes
  algorithm1: arch.ArchSpec            # Algorithm 1's Surefire: the best of step 3
  surefire: arch.ArchSpec              # the recommendation: the front's best meeting the target
  notes: list[str]

  @property
  def loss_units(self) -> str:
    return loss_units(self.l_opt)

  @property
  def pareto(self) -> pd.DataFrame:
    return self.candidates[self.candidates["pareto"]].sort_values("loss")

  def score(self, specs: Sequence[arch.ArchSpec]) -> pd.DataFrame:
    """Predicted loss, efficiency and shape numbers of any specs, as for the candidates."""
    return score(self.law, self.measure, specs, self.tokens, self.l_opt)

  def locate(self, spec: arch.ArchSpec) -> dict:
    """Where `spec` stands: its scores, whether it meets the target, and the Pareto front's best
    efficiency at a loss no higher than its own (`front_efficiency`; gap = its own / that)."""
    row = self.score([spec]).iloc[0].to_dict()
    front = self.pareto
    better = front[front["loss"] <= row["loss"]]
    best = float(better["efficiency"].max()) if not better.empty else float("nan")
    return {**row, "meets_target": bool(meets(row["loss"], self.target)),
            "front_efficiency": best, "efficiency_vs_front": row["efficiency"] / best,
            "dominated": bool(best > row["efficiency"])}

  def picks(self) -> dict[str, arch.ArchSpec]:
    """The named architectures: baseline (if any), Panda, Algorithm 1's step-2 and final picks,
    and Surefire (the recommendation)."""
    named = {"baseline": self.baseline} if self.baseline is not None else {}
    return {**named, "panda": self.panda, "algorithm1_step2": self.algorithm1_step2,
            "algorithm1": self.algorithm1, "surefire": self.surefire}

  def to_dict(self) -> dict:
    """Everything, JSON-ready: inputs, target, optimum, picks with scores, continuous optima,
    the GQA trace, notes and every candidate."""
    return {
        "law": json.loads(self.law.to_json()), "efficiency": self.measure.label,
        "n_params": self.n_params, "tokens": self.tokens, "target": self.target,
        "loss_units": self.loss_units,
        "optimum": {"d_over_sqrt_n": self.optimum[0], "mlp_attn_ratio": self.optimum[1]},
        "picks": {k: _jsonable(self.locate(v)) for k, v in self.picks().items()},
        "continuous": [dataclasses.asdict(c) for c in self.continuous],
        "gqa_trace": [{**dataclasses.asdict(s), "spec": dataclasses.asdict(s.spec)}
                      for s in self.gqa_trace],
        "notes": self.notes,
        "candidates": [_jsonable(r) for r in self.candidates.to_dict("records")],
    }


def loss_units(l_opt) -> str:
  """The units of the losses of a search given `l_opt`: "absolute", or "relative to L_opt"."""
  return "relative to L_opt" if l_opt in (None, "relative") else "absolute"


def _jsonable(row: dict) -> dict:
  return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """The shapes searched at one budget: depth, head size and vocabulary fixed, d_model on a grid,
  ffn_dim in multiples of `ffn_step`, GQA over `gqas`; N within `tolerance` of the budget."""

  n_params: float                      # N, the budget in non-embedding parameters
  n_layers: int
  head_dim: int
  vocab_size: int
  d_models: Sequence[int]              # the d_model grid
  gqa: int                             # step 2's GQA (the baseline's, else 4)
  gqas: Sequence[int]                  # every GQA scored, ascending, `gqa` among them
  ffn_step: int
  tolerance: float                     # |N - n_params| <= tolerance * n_params
  r_range: tuple[float, float] | None  # keep only MLP-to-attention ratios inside; None keeps all

  def candidates(self) -> list[arch.ArchSpec]:
    """Every shape of the space (`arch.enumerate_candidates`, then the r_range filter)."""
    specs = arch.enumerate_candidates(
        self.n_params, n_layers=self.n_layers, head_dim=self.head_dim, d_models=self.d_models,
        gqas=self.gqas, ffn_step=self.ffn_step, tolerance=self.tolerance,
        vocab_size=self.vocab_size)
    if self.r_range is None:
      return specs
    return [s for s in specs if self.r_range[0] <= s.mlp_attn_ratio <= self.r_range[1]]

  def nearest(self, x: float, r: float) -> arch.ArchSpec:
    """The shape at step 2's GQA nearest (x = d/sqrt(N), r): d_model the grid's nearest to
    x * sqrt(N) in log, then the heads and ffn_dim `arch.from_budget` fits to N and r."""
    d_target = x * math.sqrt(self.n_params)
    d = min(self.d_models, key=lambda v: abs(math.log(v / d_target)))
    return arch.from_budget(self.n_params, n_layers=self.n_layers, head_dim=self.head_dim,
                            d_model=d, r=r, gqa=self.gqa, vocab_size=self.vocab_size,
                            ffn_step=self.ffn_step)


@dataclasses.dataclass(frozen=True)
class LawOptimum:
  """Where the law is lowest, and Panda, the feasible shape there (see `law_optimum`)."""

  x: float                # d/sqrt(N) of the optimum: the law's x*, or Panda's when `note` is set
  r: float                # MLP-to-attention ratio of the optimum: r*, or Panda's
  min_loss: float         # the law's minimum, or the candidates' lowest predicted loss
  panda: arch.ArchSpec
  note: str | None        # why Panda is the candidates' argmin rather than nearest (x*, r*)


def _default_d_models(n_params: float, head_dim: int) -> list[int]:
  """d_model grid: multiples of 2*head_dim with d/sqrt(N) in [0.03, 0.2] (**choice**)."""
  step = 2 * head_dim
  lo, hi = 0.03 * math.sqrt(n_params), 0.2 * math.sqrt(n_params)
  return list(range(max(step, int(math.ceil(lo / step)) * step), int(hi) + 1, step))


MAX_PARAMS = 1e14  # the largest budget whose candidate grid the search enumerates


def _check_arguments(loss_target, baseline, d_models, gqas, ffn_step, tolerance, baseline_gqa,
                     gqa_starts, gqa_loss, r_range) -> None:
  """UserErrors naming search's argument of the wrong type (the budget: _check_inputs)."""
  f = "search.search"
  inputs.argument(loss_target, "loss_target", "positive", f, optional=True)
  inputs.instance(baseline, "baseline", (str, arch.ArchSpec), "a preset name or an ArchSpec", f,
                  optional=True)
  inputs.argument(d_models, "d_models", "integers", f, optional=True)
  inputs.argument(gqas, "gqas", "integers", f)
  inputs.argument(tolerance, "tolerance", "fraction", f)
  for name, value in (("ffn_step", ffn_step), ("gqa_starts", gqa_starts)):
    inputs.argument(value, name, "positive integer", f)
  inputs.argument(baseline_gqa, "baseline_gqa", "positive integer", f, optional=True)
  inputs.argument(gqa_loss, "gqa_loss", "callable", f, optional=True)
  inputs.argument(r_range, "r_range", "range", f, optional=True)


def _check_inputs(law, n_params, tokens, n_layers, head_dim, tolerance, max_gqa, vocab_size
                  ) -> None:
  if not isinstance(law, ConditionalLaw):
    raise UserError(f"search.search: law must be a ConditionalLaw, got {type(law).__name__}")
  for name, value in (("n_params", n_params), ("tokens", tokens)):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0):
      raise UserError(f"search.search: {name} must be a positive number, got {value!r}")
  for name, value in (("n_layers", n_layers), ("head_dim", head_dim)):
    inputs.positive_int(value, name)
  if head_dim % 2:
    raise UserError(f"head_dim must be even (RoPE rotates pairs of dimensions), got {head_dim}")
  if n_params > MAX_PARAMS:
    raise UserError(f"n_params {n_params:.4g} is beyond the {MAX_PARAMS:.0e} parameters the "
                    "search enumerates; give a budget in parameters (e.g. 7e9)")
  if not 0 < tolerance < 1:
    raise UserError(f"tolerance is a fraction of n_params in (0, 1), got {tolerance!r}")
  for name, value in (("max_gqa", max_gqa), ("vocab_size", vocab_size)):
    inputs.positive_int(value, name)
  # The smallest sensible layer: d_model = 2*head_dim, one query and one KV head, a tiny MLP.
  smallest = arch.ArchSpec(1, 2 * head_dim, 1, 1, head_dim, head_dim, 1).non_embedding_params
  if n_params / n_layers < smallest:
    raise UserError(
        f"a budget of {n_params:.4g} parameters over {n_layers} layers leaves "
        f"{n_params / n_layers:.4g} per layer, less than the smallest layer with head_dim "
        f"{head_dim} ({smallest}); use fewer layers or a larger budget")


def _baseline_arch(baseline, loss_target) -> arch.ArchSpec | None:
  """The baseline as an ArchSpec (a preset name looked up); raises when no target is given."""
  if isinstance(baseline, str):
    baseline = arch.preset(baseline)
  if loss_target is None and baseline is None:
    raise UserError("give a loss_target or a baseline architecture whose predicted loss is "
                     "the target")
  return baseline


def _step2_gqa(baseline: arch.ArchSpec | None, baseline_gqa: int | None, max_gqa: int) -> int:
  """The GQA step 2 holds fixed: `baseline_gqa`, else the baseline's, else 4."""
  gqa = baseline_gqa or (baseline.gqa if baseline is not None else 4)
  if gqa > max_gqa:
    raise UserError(f"max_gqa={max_gqa} is below step 2's GQA {gqa} (the baseline's, or "
                    "baseline_gqa): step 3 would have no GQA to try; raise max_gqa")
  return gqa


def search(law: ConditionalLaw, n_params: float, tokens: float, n_layers: int, head_dim: int, *,
           loss_target: float | None = None, baseline: arch.ArchSpec | str | None = None,
           efficiency=None, l_opt=None, d_models: Sequence[int] | None = None,
           gqas: Sequence[int] = (1, 2, 4, 8, 16), ffn_step: int = 256, tolerance: float = 0.01,
           vocab_size: int = 128256, baseline_gqa: int | None = None, max_gqa: int = 16,
           gqa_starts: int = 8, gqa_loss: Callable[[arch.ArchSpec], float] | None = None,
           r_range: tuple[float, float] | None = None) -> SearchResult:
  """Run Algorithm 1 at budget N = `n_params` and `tokens` training tokens (see module doc).

  loss_target: the loss to meet (absolute when `l_opt` is given, else relative to L_opt); or
  baseline: an architecture whose predicted loss is the target (e.g. "llama3.2-1b"); with both,
  the lower. efficiency: an `EfficiencyMeasure` or callable ArchSpec -> float; default the
  a100-40gb roofline at batch 64, 4096 in / 1024 out. baseline_gqa: the GQA of step 2 (default:
  the baseline's, else 4). Step 3 varies GQA at exact parameter count from each of the
  `gqa_starts` most efficient step-2 shapes that meet the target (the paper varied one; a shape
  whose head count has few divisors offers few GQA values, so several starts are a **choice**),
  up to max_gqa (**choice**: 16), calling `gqa_loss` (if given) once per variant. r_range:
  keep only candidates whose MLP-to-attention ratio lies inside it (e.g. the law's fitted range,
  so that no pick rests on the law's extrapolation); None keeps all.
  """
  _check_arguments(loss_target, baseline, d_models, gqas, ffn_step, tolerance, baseline_gqa,
                   gqa_starts, gqa_loss, r_range)
  _check_inputs(law, n_params, tokens, n_layers, head_dim, tolerance, max_gqa, vocab_size)
  law = law.at(n_params)  # a law whose shape effect depends on N, at the budget
  measure = as_efficiency(efficiency)
  baseline = _baseline_arch(baseline, loss_target)
  # Step 1: L_opt(N, D).
  l_opt_at_n = l_opt_at_budget(l_opt, n_params, tokens)
  # Step 2: over (d_model, r) at one GQA.
  gqa = _step2_gqa(baseline, baseline_gqa, max_gqa)
  grid = list(d_models) if d_models is not None else _default_d_models(n_params, head_dim)
  space = SearchSpace(n_params, n_layers, head_dim, vocab_size, d_models=grid, gqa=gqa,
                      gqas=sorted(set(gqas) | {gqa}), ffn_step=ffn_step, tolerance=tolerance,
                      r_range=r_range)
  table = score_candidates(law, measure, space, tokens, l_opt)
  optimum = law_optimum(law, space, table, l_opt_at_n)
  target = target_loss(law, optimum, tokens, l_opt, loss_target=loss_target, baseline=baseline)
  table = table.assign(meets_target=meets(table["loss"], target))
  continuous = _continuous(law, measure, space, table, target, l_opt_at_n)
  starts = step2_picks(table, gqa, target, gqa_starts)
  # Step 3: GQA, from each step-2 pick.
  trace, algorithm1 = gqa_step(starts, measure, gqa_loss, max_gqa)
  # The front over everything scored, and the recommendation on it.
  table = _with_trace(table, trace, law, measure, tokens, l_opt, target)
  table = pareto_front(table, _admissible(table, trace, gqa, max_gqa, gqa_loss is not None))
  surefire = most_efficient_meeting_target(table)
  differ = None if surefire == algorithm1 else _why_they_differ(table, surefire, algorithm1, trace)
  notes = _notes(l_opt, optimum, gqa_loss, max_gqa, differ)
  return SearchResult(law, measure, l_opt, n_params, tokens, target, (optimum.x, optimum.r),
                      optimum.panda, baseline, table, continuous, starts[0], trace, algorithm1,
                      surefire, notes)


# -- step 1: L_opt -------------------------------------------------------------------------------
def l_opt_at_budget(l_opt, n_params: float, tokens: float) -> float:
  """Algorithm 1, step 1: L_opt(N, D) at N = `n_params` parameters and D = `tokens` tokens.

  l_opt: a number; a `ChinchillaLaw`, e.g. fitted on smaller models' runs when L_opt is unknown
  (`laws.l_opt.fit_chinchilla`, the paper's way), or "epoch"/"hoffmann"; or None/"relative": no
  L_opt, so 1 (losses are L / L_opt). Raises for a source that needs a runs table ("fit", ...).
  """
  return float(l_opt_lib.at(l_opt, np.array([float(n_params)]), tokens)[0])


# -- step 2: over (d_model, r) -------------------------------------------------------------------
def score_candidates(law: ConditionalLaw, measure: EfficiencyMeasure, space: SearchSpace,
                     tokens: float, l_opt=None) -> pd.DataFrame:
  """Algorithm 1, step 2's evaluation: one `score` row per candidate of `space` (predicted loss,
  efficiency, shape numbers). Raises when the space holds none, naming the shape nearest the
  law's optimum where there is one."""
  specs = space.candidates()
  if not specs:
    raise UserError(_no_candidates(law, space))
  return score(law, measure, specs, tokens, l_opt)


def _no_candidates(law: ConditionalLaw, space: SearchSpace) -> str:
  try:
    closest = space.nearest(*law.optimum())
    hint = (f"; the closest to the law's optimum is {closest} with N = "
            f"{closest.non_embedding_params:.4g}")
  except ValueError:
    hint = ""
  r_range = space.r_range
  return (f"no architecture within {space.tolerance:.1%} of {space.n_params:.4g} parameters on "
          "this grid" + (f" with r in [{r_range[0]:g}, {r_range[1]:g}]" if r_range is not None
                         else "")
          + f"{hint}; widen the tolerance or r_range, refine ffn_step or change the d_model grid")


def law_optimum(law: ConditionalLaw, space: SearchSpace, table: pd.DataFrame,
                l_opt_at_n: float) -> LawOptimum:
  """Algorithm 1, step 2's analytic part: the law's minimum and Panda, its loss-argmin.

  (x*, r*) minimises L_opt * f(d/sqrt(N), r) (a2/a1, b2/b1 for the separable forms); its loss is
  the least any shape can reach, and Panda is `space.nearest(x*, r*)`. Where the law has no
  interior minimum, or it lies outside the searched region (the candidates' d/sqrt(N) span and
  `space.r_range`, else their r span), Panda is instead the lowest predicted loss in `table` (at
  step 2's GQA when it has any), and `note` says why.

  table: `score_candidates` rows; l_opt_at_n: L_opt at the budget (step 1).
  """
  try:
    x_star, r_star = law.optimum()
    problem = _outside_region(x_star, r_star, table, space.r_range)
  except ValueError as e:
    problem = str(e).split(":")[0]
  if problem is not None:
    return _lowest_candidate(table, space.gqa, problem)
  with float64():
    min_loss = float(law.predict_xr(x_star, r_star, l_opt_at_n))
  return LawOptimum(x_star, r_star, min_loss, space.nearest(x_star, r_star), None)


def _outside_region(x_star: float, r_star: float, table: pd.DataFrame,
                    r_range: tuple[float, float] | None) -> str | None:
  """Why (x*, r*) lies outside the searched region; None when it is inside."""
  outside = [f"{name} = {value:.3g} is outside [{low:.3g}, {high:.3g}]" for name, value, low, high
             in (("d/sqrt(N)", x_star, *_bounds(table["d_over_sqrt_n"])),
                 ("r", r_star, *(r_range or _bounds(table["mlp_attn_ratio"]))))
             if not low <= value <= high]
  return (f"the law's optimum lies outside the searched region ({'; '.join(outside)})"
          if outside else None)


def _lowest_candidate(table: pd.DataFrame, gqa: int, problem: str) -> LawOptimum:
  """Panda as the lowest predicted loss in `table` (at `gqa` when it has any), noting `problem`."""
  at_gqa = table[table["gqa"] == gqa]
  best = (at_gqa if len(at_gqa) else table).sort_values("loss").iloc[0]
  x, r = float(best["d_over_sqrt_n"]), float(best["mlp_attn_ratio"])
  return LawOptimum(x, r, float(table["loss"].min()), spec_of_row(best),
                    f"{problem}: Panda is the lowest predicted loss among the candidates "
                    f"(d/sqrt(N) = {x:.3f}, r = {r:.3f})")


def target_loss(law: ConditionalLaw, optimum: LawOptimum, tokens: float, l_opt=None, *,
                loss_target: float | None = None,
                baseline: arch.ArchSpec | None = None) -> float:
  """L_t: `loss_target`, the baseline's predicted loss, or the lower of the two. Raises when it is
  below `optimum.min_loss`, which no shape can reach (the paper's input L_t >= L_opt)."""
  targets = [float(loss_target)] if loss_target is not None else []
  if baseline is not None:
    targets.append(float(predict_loss(law, [baseline], tokens, l_opt)[0]))
  target = min(targets)
  if target < optimum.min_loss:
    raise UserError(f"loss target {target:.6g} is below the law's minimum achievable "
                     f"{optimum.min_loss:.6g} (at d/sqrt(N) = {optimum.x:.3f}, r = "
                     f"{optimum.r:.3f}); raise the target or the budget")
  return target


def _continuous(law: ConditionalLaw, measure: EfficiencyMeasure, space: SearchSpace,
                table: pd.DataFrame, target: float, l_opt_at_n: float) -> list[ContinuousOptimum]:
  """`solve_continuous` at every scored GQA over the candidates' (x, r) box; [] unless the
  measure is the roofline, whose formula the relaxation needs."""
  if not isinstance(measure, RooflineEfficiency):
    return []
  return solve_continuous(
      law, measure, n_params=space.n_params, n_layers=space.n_layers, head_dim=space.head_dim,
      vocab_size=space.vocab_size, gqas=space.gqas, target=target, l_opt=l_opt_at_n,
      x_bounds=_bounds(table["d_over_sqrt_n"]), r_bounds=_bounds(table["mlp_attn_ratio"]))


def step2_picks(table: pd.DataFrame, gqa: int, target: float, count: int) -> list[arch.ArchSpec]:
  """Algorithm 1, step 2's picks: the `count` most efficient rows of `table` at GQA `gqa` that
  meet `target` (its `meets_target` column) with a positive efficiency, best first. Raises when
  there is none."""
  at_gqa = table[table["gqa"] == gqa]
  feasible = at_gqa[at_gqa["meets_target"] & (at_gqa["efficiency"] > 0)]
  if feasible.empty:
    raise UserError(f"no candidate at GQA {gqa} meets the target {target:.6g} with a "
                     f"positive efficiency on this grid; the lowest predicted loss there is "
                     f"{at_gqa['loss'].min():.6g}")
  return [spec_of_row(row) for _, row in
          feasible.sort_values("efficiency", ascending=False).head(count).iterrows()]


# -- step 3: GQA ---------------------------------------------------------------------------------
def gqa_local_search(start: arch.ArchSpec, measure: EfficiencyMeasure,
                     gqa_loss: Callable[[arch.ArchSpec], float] | None, max_gqa: int,
                     index: int = 0) -> list[GqaStep]:
  """Algorithm 1, step 3 from one step-2 pick: the GQA values that keep start's parameter count
  exactly, from start's upwards (<= max_gqa) in ascending order, stopping at the first whose loss
  (from `gqa_loss`) is above start's; without `gqa_loss` all are accepted. index: start's rank
  among the step-2 picks (`GqaStep.start`)."""
  values = [g for g in arch.exact_param_gqa_values(start) if start.gqa <= g <= max_gqa]
  variants = [arch.with_gqa(start, g) for g in values]
  rates = measure.many(variants)
  base_loss = None if gqa_loss is None else float(gqa_loss(start))
  trace = []
  for g, spec, rate in zip(values, variants, rates):
    loss = base_loss if (gqa_loss is None or g == start.gqa) else float(gqa_loss(spec))
    accepted = gqa_loss is None or loss <= base_loss
    trace.append(GqaStep(index, g, spec, float(rate), loss, accepted))
    if not accepted:
      break
  return trace


def gqa_step(starts: Sequence[arch.ArchSpec], measure: EfficiencyMeasure,
             gqa_loss: Callable[[arch.ArchSpec], float] | None,
             max_gqa: int) -> tuple[list[GqaStep], arch.ArchSpec]:
  """Algorithm 1, step 3: `gqa_local_search` from each of step 2's picks (`starts`, best first).
  Returns every step taken and Algorithm 1's pick, the most efficient variant accepted."""
  trace = [step for i, start in enumerate(starts)
           for step in gqa_local_search(start, measure, gqa_loss, max_gqa, index=i)]
  return trace, max((s for s in trace if s.accepted), key=lambda s: s.efficiency).spec


# -- the front and the picks ---------------------------------------------------------------------
def _with_trace(table, trace, law, measure, tokens, l_opt, target) -> pd.DataFrame:
  """The candidates plus step 3's GQA variants that step 2 did not score (other GQA values)."""
  known = set(_table_keys(table))
  extra = list({_shape_key(s.spec): s.spec for s in trace
                if _shape_key(s.spec) not in known}.values())
  if not extra:
    return table
  more = score(law, measure, extra, tokens, l_opt)
  more["meets_target"] = meets(more["loss"], target)
  return pd.concat([table, more], ignore_index=True)


def _admissible(table: pd.DataFrame, trace: list[GqaStep], gqa: int, max_gqa: int,
                evaluated: bool) -> pd.Series:
  """Rows the front may hold: GQA up to max_gqa when GQA is assumed loss-neutral; with an
  evaluator (`evaluated`), only step 2's GQA and the variants it accepted."""
  if not evaluated:
    return table["gqa"] <= max_gqa
  accepted = {_shape_key(s.spec) for s in trace if s.accepted}
  return (table["gqa"] == gqa) | np.array([key in accepted for key in _table_keys(table)])


def pareto_front(table: pd.DataFrame, admissible) -> pd.DataFrame:
  """Step 2's Pareto front of predicted loss against efficiency: `table` plus the bool columns
  `admissible` (as given, [rows]) and `pareto` (`pareto_mask` over the admissible rows)."""
  efficiency = table["efficiency"].to_numpy(np.float64) * np.asarray(admissible)
  return table.assign(admissible=admissible,
                      pareto=admissible & pareto_mask(table["loss"].to_numpy(), efficiency))


def meets(loss, target: float):
  """Whether `loss` (a number or an array) meets `target`, up to float64 rounding."""
  return loss <= target * (1 + 1e-12)


def most_efficient_meeting_target(table: pd.DataFrame) -> arch.ArchSpec:
  """The admissible candidate of highest efficiency that meets the target (ties: lower loss);
  no admissible point beats it on both axes, so it is on the Pareto front."""
  ok = table[table["admissible"] & table["meets_target"] & (table["efficiency"] > 0)]
  return spec_of_row(ok.sort_values(["efficiency", "loss"], ascending=[False, True]).iloc[0])


def _notes(l_opt, optimum: LawOptimum, gqa_loss, max_gqa: int, differ: str | None) -> list[str]:
  """What the reader of the picks must know: relative losses, Panda's fallback, the GQA
  assumption, and why Surefire and Algorithm 1's pick differ (`differ`)."""
  notes = [] if l_opt not in (None, "relative") else [
      "no L_opt given: losses are relative (L / L_opt)"]
  if optimum.note is not None:
    notes.append(optimum.note)
  if gqa_loss is None:
    notes.append("GQA is not in the law and no gqa_loss evaluator was given: GQA assumed "
                 f"loss-neutral up to max_gqa={max_gqa}")
  return notes + ([differ] if differ is not None else [])


def _why_they_differ(table, surefire, algorithm1, trace) -> str:
  rate = dict(zip(_table_keys(table), table["efficiency"]))
  gain = rate[_shape_key(surefire)] / rate[_shape_key(algorithm1)] - 1
  gqas = sorted({s.gqa for s in trace})
  return (f"Surefire (d={surefire.d_model}, f={surefire.ffn_dim}, GQA {surefire.gqa}) is "
          f"{gain:+.1%} over Algorithm 1's pick (d={algorithm1.d_model}, GQA {algorithm1.gqa}): "
          f"step 3 varies GQA only at exact parameter count from step 2's best shapes, whose head "
          f"counts allowed GQA {gqas}; Surefire is the front's most efficient shape meeting the "
          "target")


def score(law: ConditionalLaw, measure: EfficiencyMeasure, specs: Sequence[arch.ArchSpec],
          tokens: float, l_opt=None) -> pd.DataFrame:
  """One row per spec: shape, N, GQA, r, d/sqrt(N), KV bytes/token, predicted loss, efficiency."""
  shapes = arch.stack(specs)
  table = pd.DataFrame({f: [getattr(s, f) for s in specs] for f in SHAPE_COLUMNS})
  table["n_params"] = shapes.non_embedding_params.astype(np.int64)
  table["gqa"] = [s.gqa for s in specs]
  table["mlp_attn_ratio"] = shapes.mlp_attn_ratio
  table["d_over_sqrt_n"] = shapes.d_over_sqrt_n
  table["kv_bytes_per_token"] = cost.kv_cache_bytes_per_token(shapes)
  table["loss"] = predict_loss(law, specs, tokens, l_opt)
  table["efficiency"] = as_efficiency(measure).many(specs)
  return table


def _bounds(values) -> tuple[float, float]:
  return float(np.min(values)), float(np.max(values))


def spec_of_row(row) -> arch.ArchSpec:
  """The ArchSpec of a row of a `score` table (its SHAPE_COLUMNS)."""
  return arch.ArchSpec(**{f: (bool(row[f]) if f == "tie_embeddings" else int(row[f]))
                          for f in SHAPE_COLUMNS})
