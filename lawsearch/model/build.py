"""Building the model: concrete or abstract (shapes only), and reading its parameter metadata."""

from __future__ import annotations

import jax
from flax import nnx

from lawsearch.model.transformer import ModelConfig, Transformer


def build(config: ModelConfig, seed: int = 0) -> Transformer:
  """A freshly initialised model; parameters depend only on (config, seed).

  seed: an int or a jax PRNG key (a key lets one jitted build serve every seed).
  """
  return Transformer(config, rngs=nnx.Rngs(params=seed))


def abstract_model(config: ModelConfig) -> Transformer:
  """The model with ShapeDtypeStruct leaves: no memory, cheap even for billion-parameter presets."""
  return nnx.eval_shape(lambda: build(config))


def param_count(model: Transformer) -> int:
  """Number of scalars in the model's parameters (works on abstract models)."""
  leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
  return sum(int(x.size) for x in leaves)


def logical_axes(model: Transformer) -> dict:
  """Pure-dict tree (as `nnx.to_pure_dict(nnx.state(model))`: the parameters and any other
  variable, such as MoE router biases) of logical axis tuples."""
  state = nnx.state(model)
  names = jax.tree.map(lambda v: v.get_metadata()["logical_axes"], state,
                       is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.to_pure_dict(names)
