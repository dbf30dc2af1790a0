"""Logical axis names -> mesh axes: the one mechanism behind every sharding in lawsearch.

Parameters carry logical axis names as Variable metadata (`logical_axes=("embed", "mlp")`) and
activations are constrained by name with `constrain(x, ("act_batch", "act_seq", "act_embed"))`.
A rules table (from the config) maps each logical name to a mesh axis, a tuple of mesh axes, or
None (replicated). Outside an `axis_rules(mesh, rules)` context `constrain` is the identity, so the
model runs unchanged on one device.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from typing import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lawsearch.errors import UserError

Rules = Sequence[tuple[str, "str | tuple[str, ...] | None"]]

_CONTEXT: contextvars.ContextVar = contextvars.ContextVar("lawsearch_axis_rules", default=None)


def logical_to_spec(names: Sequence[str | None], rules: Rules, mesh: Mesh | None = None,
                    shape: Sequence[int] | None = None) -> PartitionSpec:
  """PartitionSpec for an array whose dimensions have logical `names`.

  With `mesh` and `shape` given, a mesh axis that does not divide its dimension is dropped (that
  dimension is replicated over it, with a warning naming both), and a mesh axis is used at most
  once per array.
  Unknown logical names raise an error: every name the model uses must appear in the rules table.
  """
  table = dict(rules)
  used: set[str] = set()
  spec = []
  for i, name in enumerate(names):
    if name is None:
      spec.append(None)
      continue
    if name not in table:
      raise UserError(f"logical axis {name!r} has no entry in the sharding rules; add "
                       f"({name!r}, <mesh axis or None>) to config.sharding_rules")
    target = table[name]
    axes = () if target is None else (target,) if isinstance(target, str) else tuple(target)
    kept = []
    for axis in axes:
      if axis in used:
        continue
      if mesh is not None:
        if axis not in mesh.shape:
          raise UserError(f"sharding rule {name!r} -> {axis!r}: mesh has no axis {axis!r} "
                           f"(mesh axes: {tuple(mesh.shape)})")
        size = mesh.shape[axis]
        prod = size
        for a in kept:
          prod *= mesh.shape[a]
        if shape is not None and shape[i] % prod:
          warnings.warn(f"logical axis {name!r} (size {shape[i]}) is not divisible by mesh axis "
                        f"{axis!r} ({prod} ways with the axes before it): it is replicated "
                        "over that axis instead of sharded", stacklevel=2)
          continue
      kept.append(axis)
      used.add(axis)
    spec.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
  return PartitionSpec(*spec)


@contextlib.contextmanager
def axis_rules(mesh: Mesh, rules: Rules):
  """Within this context `constrain` shards activations over `mesh` following `rules`."""
  token = _CONTEXT.set((mesh, tuple(rules)))
  try:
    yield
  finally:
    _CONTEXT.reset(token)


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
  """`x` with a sharding constraint from its logical axis `names` (identity without rules)."""
  context = _CONTEXT.get()
  if context is None:
    return x
  mesh, rules = context
  spec = logical_to_spec(names, rules, mesh, x.shape)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
