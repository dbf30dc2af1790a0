"""The device mesh from config, and the shardings of params, optimizer state and batch.

config.mesh is an ordered mapping of axis name -> size (e.g. data=1, fsdp=-1, tensor=1); one size
may be -1 ("all remaining devices"). config.sharding_rules is the one table of logical axis name ->
mesh axes that params (via their `logical_axes` metadata), activations and the batch follow.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lawsearch.errors import UserError
from lawsearch.model.partitioning import Rules, logical_to_spec

BATCH_AXES = ("act_batch", "act_seq")  # logical names of a [batch, seq] token array


def mesh_shape(axes: Mapping[str, int], n_devices: int) -> dict[str, int]:
  """Resolve a -1 size against `n_devices`; errors name the mismatch and how to fix it."""
  axes = {str(k): int(v) for k, v in dict(axes).items()}
  free = [k for k, v in axes.items() if v == -1]
  if len(free) > 1 or any(v == 0 or v < -1 for v in axes.values()):
    raise UserError(f"config.mesh sizes must be positive with at most one -1, got {axes}")
  fixed = math.prod(v for v in axes.values() if v != -1)
  if free:
    if n_devices % fixed:
      raise UserError(f"config.mesh {axes}: fixed axes ({fixed} devices) do not divide the "
                       f"{n_devices} devices available")
    axes[free[0]] = n_devices // fixed
  if math.prod(axes.values()) != n_devices:
    raise UserError(f"config.mesh {axes} has {math.prod(axes.values())} devices but "
                     f"{n_devices} are available; make the product of the sizes {n_devices} "
                     f"or set one size to -1")
  return axes


def make_mesh(axes: Mapping[str, int], devices: Sequence | None = None) -> Mesh:
  """A Mesh over `devices` (default: all) with the axis sizes of `axes`."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(axes, len(devices))
  grid = mesh_utils.create_device_mesh(tuple(shape.values()), devices=devices,
                                       allow_split_physical_axes=True)
  return Mesh(grid, tuple(shape))


def tree_shardings(mesh: Mesh, rules: Rules, axes_tree, shapes_tree):
  """NamedShardings for a tree of arrays whose logical axes are given by `axes_tree`."""
  return jax.tree.map(
      lambda names, x: NamedSharding(mesh, logical_to_spec(names, rules, mesh, x.shape)),
      axes_tree, shapes_tree, is_leaf=lambda n: isinstance(n, tuple))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
  """Sharding of an int32 [batch, seq] token array."""
  return NamedSharding(mesh, logical_to_spec(BATCH_AXES, rules, mesh))


def batch_shards(mesh: Mesh, rules: Rules) -> int:
  """How many ways the batch dimension is split (the batch size must be a multiple)."""
  spec = logical_to_spec(BATCH_AXES[:1], rules, mesh)[0]
  axes = () if spec is None else (spec,) if isinstance(spec, str) else spec
  return math.prod(mesh.shape[a] for a in axes)


def sharded_fraction(shardings, shapes) -> float:
  """Fraction of scalars in arrays that are split over at least one mesh axis."""
  total = sharded = 0
  for s, x in zip(jax.tree.leaves(shardings), jax.tree.leaves(shapes)):
    size = int(np.prod(x.shape))
    total += size
    if any(p is not None for p in s.spec):
      sharded += size
  return sharded / total
