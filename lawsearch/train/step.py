"""Train state, initialisation, the train step and the eval step (pure functions for jax.jit).

Parameters travel as a pure dict (`nnx.to_pure_dict` layout) so optax, orbax and jit see plain
arrays; `Model.apply` merges them back into the NNX module inside the traced function.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lawsearch.model import ModelConfig, abstract_model, build, logical_axes
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
    graphdef, state = nnx.split(abstract_model(config))
    self.graphdef = graphdef
    self.treedef = jax.tree.structure(state)
    self.shapes = nnx.to_pure_dict(state)  # pure dict of ShapeDtypeStruct
    self.axes = logical_axes(abstract_model(config))  # pure dict of logical axis tuples

  def init(self, seed: int):
    """Parameters (pure dict) for `seed`."""
    return nnx.to_pure_dict(nnx.state(build(self.config, seed)))

  def module(self, params):
    return nnx.merge(self.graphdef, jax.tree.unflatten(self.treedef, jax.tree.leaves(params)))

  def apply(self, params, tokens):
    """tokens int32 [B, T] -> logits float32 [B, T, V]."""
    return self.module(params)(tokens)


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean next-token loss in nats. logits [B, T, V] float32, targets [B, T] int32 -> []."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def make_init(model: Model, tx: optax.GradientTransformation, seed: int):
  """() -> TrainState at step 0 (jit it with out_shardings to create it already sharded)."""

  def init():
    params = model.init(seed)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))

  return init


def make_train_step(model: Model, tx: optax.GradientTransformation, schedule, *,
                    grad_accum_steps: int = 1, mesh=None, rules: Rules = ()):
  """(state, batch) -> (state, metrics). batch: {"inputs", "targets"} int32 [B, T].

  With grad_accum_steps = A > 1 the batch is split into A micro-batches of B/A rows whose
  gradients are averaged (a lax.scan), so the update equals the full-batch one.
  metrics: loss (mean over the batch), grad_norm (before clipping), lr (of this step).
  """

  def loss_and_grad(params, inputs, targets):
    return jax.value_and_grad(lambda p: cross_entropy(model.apply(p, inputs), targets))(params)

  def step(state: TrainState, batch):
    inputs, targets = batch["inputs"], batch["targets"]
    with axis_rules(mesh, rules) if mesh is not None else contextlib.nullcontext():
      if grad_accum_steps == 1:
        loss, grads = loss_and_grad(state.params, inputs, targets)
      else:
        micro = lambda x: x.reshape(grad_accum_steps, -1, *x.shape[1:])

        def body(acc, xs):
          loss, grads = loss_and_grad(state.params, *xs)
          return jax.tree.map(jnp.add, acc, (loss, grads)), None

        zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params))
        (loss, grads), _ = jax.lax.scan(body, zeros, (micro(inputs), micro(targets)))
        loss, grads = jax.tree.map(lambda g: g / grad_accum_steps, (loss, grads))
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree_utils.tree_norm(grads),
               "lr": schedule(state.step)}
    return TrainState(state.step + 1, params, opt_state), metrics

  return step


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
