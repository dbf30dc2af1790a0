"""Train state, initialisation, the train step and the eval step (pure functions for jax.jit).

Parameters travel as a pure dict (`nnx.to_pure_dict` layout) so optax, orbax and jit see plain
arrays; `Model.apply` merges them back into the NNX module inside the traced function.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lawsearch.model import ModelConfig, abstract_model, build, logical_axes
from lawsearch.model.moe import update_router_bias
from lawsearch.model.partitioning import Rules, axis_rules
from lawsearch.train.mesh import replicated, tree_shardings


class TrainState(NamedTuple):
  step: jax.Array  # shape=(), int32: optimizer steps taken
  params: Any  # pure dict of parameter arrays
  opt_state: Any  # optax state over `params`


class Model:
  """The functional face of a `Transformer`: shapes, logical axes, init and apply."""

  def __init__(self, config: ModelConfig):
    self.config = config
    abstract = abstract_model(config)
    graphdef, state = nnx.split(abstract)
    self.graphdef = graphdef
    self.treedef = jax.tree.structure(state)
    self.shapes = nnx.to_pure_dict(state)  # pure dict of ShapeDtypeStruct
    self.axes = logical_axes(abstract)  # pure dict of logical axis tuples

  def init(self, seed: int):
    """Parameters (pure dict) for `seed`."""
    return nnx.to_pure_dict(nnx.state(build(self.config, seed)))

  def module(self, params):
    return nnx.merge(self.graphdef, jax.tree.unflatten(self.treedef, jax.tree.leaves(params)))

  def apply(self, params, tokens):
    """tokens int32 [B, T] -> logits float32 [B, T, V]."""
    return self.module(params)(tokens)

  def forward(self, params, tokens):
    """tokens int32 [B, T] -> logits float32 [B, T, V] and the MoE layers' MoEStats stacked over
    the L' MoE layers (`Transformer.forward`), None for a dense model."""
    return self.module(params).forward(tokens)


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean next-token loss in nats. logits [B, T, V] float32, targets [B, T] int32 -> []."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


# The train step's metrics of a MoE model, besides the dense model's (make_train_step).
MOE_METRICS = ("moe_load_balance_loss", "moe_z_loss", "moe_max_load")
LOAD = "tokens_per_expert"  # make_moe_loss's [L', E] loads, which the step keeps to itself


def update_router_biases(params, arch, load: jax.Array, rate: float):
  """params with every MoE layer's RouterBias moved by `moe.update_router_bias` from its load.

  params: a pure dict (layer i's bias at params[f"layer_{i}"]["mlp"]["bias"], [E]); arch: the
  ArchSpec; load [L', E]: the step's tokens per expert of the L' MoE layers, in layer order;
  rate: the bias step (DeepSeek-V3: 0.001)."""
  params = dict(params)
  for j, i in enumerate(range(arch.first_dense_layers, arch.n_layers)):
    layer = dict(params[f"layer_{i}"])
    layer["mlp"] = {**layer["mlp"],
                    "bias": update_router_bias(layer["mlp"]["bias"], load[j], rate)}
    params[f"layer_{i}"] = layer
  return params


def make_moe_loss(model: Model, load_balance_weight: float, z_loss_weight: float):
  """(params, inputs, targets) -> (total loss [], metrics) for a model with MoE layers.

  total = cross-entropy + load_balance_weight * mean_l load_balance_loss_l
          + z_loss_weight * mean_l z_loss_l, over the L' MoE layers (lawsearch/model/moe.py;
  weights: Switch Transformer and OLMoE use 0.01 for the balance loss, ST-MoE 0.001 for the
  z-loss). inputs, targets int32 [B, T]. metrics, float32 []: loss (the cross-entropy, nats),
  moe_load_balance_loss, moe_z_loss (their means over layers), moe_max_load (the largest over
  layers of max_e / mean_e of tokens_per_expert: 1 when balanced, E / top_k at worst).
  """

  def loss(params, inputs, targets):
    logits, stats = model.forward(params, inputs)
    ce = cross_entropy(logits, targets)
    balance, z = stats.load_balance_loss.mean(), stats.z_loss.mean()
    load = stats.tokens_per_expert.astype(jnp.float32)  # [L', E]
    max_load = (load.max(-1) / load.mean(-1)).max()
    total = ce + load_balance_weight * balance + z_loss_weight * z
    metrics = dict(zip(("loss",) + MOE_METRICS, (ce, balance, z, max_load)))
    return total, {**metrics, LOAD: load}

  return loss


def make_init(model: Model, tx: optax.GradientTransformation, seed: int):
  """() -> TrainState at step 0 (jit it with out_shardings to create it already sharded)."""

  def init():
    params = model.init(seed)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))

  return init


def make_train_step(model: Model, tx: optax.GradientTransformation, schedule, *,
                    grad_accum_steps: int = 1, mesh=None, rules: Rules = (),
                    moe_load_balance_weight: float = 0.0, moe_z_loss_weight: float = 0.0,
                    moe_bias_update_rate: float = 0.0):
  """(state, batch) -> (state, metrics). batch: {"inputs", "targets"} int32 [B, T].

  With grad_accum_steps = A > 1 the batch is split into A micro-batches of B/A rows whose
  gradients and loss metrics (moe_max_load too) are averaged (a lax.scan), so the update equals
  the full-batch one.
  metrics: loss (the cross-entropy, mean over the batch), grad_norm (before clipping), lr (of this
  step), and for a model with MoE layers MOE_METRICS (make_moe_loss), whose weighted losses join
  the cross-entropy in the gradient. A dense model ignores the two weights. A model built with
  `ModelConfig.moe_bias_balancing` moves its router biases by `moe_bias_update_rate` after the
  optimizer's update (`update_router_biases`; the optimizer's own change to them is dropped).
  """
  arch = model.config.arch
  keys = ("loss",) + ((*MOE_METRICS, LOAD) if arch.moe_layers else ())
  if model.config.moe_bias_balancing != (moe_bias_update_rate > 0):
    raise ValueError(f"moe_bias_update_rate={moe_bias_update_rate} needs a model with "
                     f"moe_bias_balancing (it has {model.config.moe_bias_balancing})")

  def loss_and_grad(params, inputs, targets):
    """-> ({key: float32 []} for `keys`, grads of the total loss)."""
    if not model.config.arch.moe_layers:
      loss, grads = jax.value_and_grad(
          lambda p: cross_entropy(model.apply(p, inputs), targets))(params)
      return {"loss": loss}, grads
    moe_loss = make_moe_loss(model, moe_load_balance_weight, moe_z_loss_weight)
    (_, losses), grads = jax.value_and_grad(moe_loss, has_aux=True)(params, inputs, targets)
    return losses, grads

  def step(state: TrainState, batch):
    inputs, targets = batch["inputs"], batch["targets"]
    with axis_rules(mesh, rules) if mesh is not None else contextlib.nullcontext():
      if grad_accum_steps == 1:
        losses, grads = loss_and_grad(state.params, inputs, targets)
      else:
        micro = lambda x: x.reshape(grad_accum_steps, -1, *x.shape[1:])

        def body(acc, xs):
          return jax.tree.map(jnp.add, acc, loss_and_grad(state.params, *xs)), None

        shapes = {LOAD: (arch.moe_layers, arch.n_experts)}
        zeros = ({k: jnp.zeros(shapes.get(k, ()), jnp.float32) for k in keys},
                 jax.tree.map(jnp.zeros_like, state.params))
        (losses, grads), _ = jax.lax.scan(body, zeros, (micro(inputs), micro(targets)))
        losses, grads = jax.tree.map(lambda g: g / grad_accum_steps, (losses, grads))
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      load = losses.pop(LOAD, None)
      if moe_bias_update_rate > 0:
        params = update_router_biases(params, arch, load, moe_bias_update_rate)
    metrics = {**losses, "grad_norm": optax.tree_utils.tree_norm(grads),
               "lr": schedule(state.step)}
    return TrainState(state.step + 1, params, opt_state), metrics

  return step


# -- seed groups: several seeds of one shape as one program ----------------------------------------
def make_group_init(model: Model, tx: optax.GradientTransformation, seeds: Sequence[int]):
  """() -> TrainState whose leaves lead with a member axis [K, ...]: member k is what
  `make_init(model, tx, seeds[k])` gives (each initialised on its own, then stacked)."""
  inits = [make_init(model, tx, seed) for seed in seeds]

  def init():
    return jax.tree.map(lambda *members: jnp.stack(members), *[f() for f in inits])

  return init


def group_step(train_step):
  """A `make_train_step` step over a seed group: (states [K, ...], batch) -> (states, metrics
  [K]), every member taking the same batch (the seeds of a sweep share its data order)."""
  return jax.vmap(train_step, in_axes=(0, None))


def make_eval_step(model: Model, *, mesh=None, rules: Rules = ()):
  """(params, batch) -> float32 [B]: each sequence's mean next-token loss in nats."""

  def eval_step(params, batch):
    with axis_rules(mesh, rules) if mesh is not None else contextlib.nullcontext():
      logits = model.apply(params, batch["inputs"])
      return optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]).mean(-1)

  return eval_step



def state_shardings(model: Model, tx: optax.GradientTransformation, mesh, rules: Rules):
  """TrainState of NamedShardings: params follow `rules`, Adam moments follow their params,
  counters are replicated."""
  params = tree_shardings(mesh, rules, model.axes, model.shapes)
  opt_shapes = jax.eval_shape(tx.init, model.shapes)
  opt_state = optax.tree_map_params(tx, lambda _, s: s, opt_shapes, params,
                                    transform_non_params=lambda _: replicated(mesh))
  return TrainState(replicated(mesh), params, opt_state)
