"""The building blocks that the GQA decoder (transformer.py) and MLA (mla.py) share.

    param(rngs, shape, std, axes, dtype)   a normal(0, std) parameter with logical axis names
    dense(x, w, in_dims)                   x [..., *in] times w [*in, *out] -> [..., *out]
    rope(x, positions, theta, scaling)     rotary embedding of x [B, T, *, H]
    RMSNorm(width, eps, param_dtype)       [..., width] -> [..., width], a learned scale

Axis letters as lawsearch.model states them.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx


def param(rngs: nnx.Rngs, shape, std: float, axes, dtype) -> nnx.Param:
  """A parameter of `shape` drawn from normal(0, std) in `dtype`, tagged with `axes` (one logical
  axis name per dimension, see partitioning.py)."""
  return nnx.Param(std * jax.random.normal(rngs.params(), shape, dtype), logical_axes=axes)


def dense(x: jax.Array, w: jax.Array, in_dims: int = 1) -> jax.Array:
  """x [..., *in] times w [*in, *out] -> [..., *out], as one 2-D matmul [M, in] x [in, out].

  Flattening the leading (batch, position) axes first keeps every gradient a single-axis
  contraction: with [B, T, D] operands XLA:CPU transposes the activations for the weight
  gradient, which made the SwiGLU forward+backward 2x slower. On GPU/TPU the reshapes are free.
  """
  lead, contract, out = x.shape[:-in_dims], x.shape[-in_dims:], w.shape[in_dims:]
  y = x.reshape(-1, math.prod(contract)) @ w.reshape(math.prod(contract), -1)
  return y.reshape(*lead, *out)


@dataclasses.dataclass(frozen=True)
class Llama3RopeScaling:
  """LLaMA-3.1/3.2's RoPE frequency scaling (Hugging Face rope_type "llama3"): wavelengths above
  original_max_position_embeddings / low_freq_factor (tokens) are stretched by `factor`, those
  below original / high_freq_factor kept, the band between interpolated."""

  factor: float
  low_freq_factor: float
  high_freq_factor: float
  original_max_position_embeddings: float


def rope_frequencies(head_dim: int, theta: float,
                     scaling: Llama3RopeScaling | None = None) -> jax.Array:
  """Inverse wavelengths theta^(-2i/H), i < H/2 [H/2] float32 (radians per position), scaled."""
  half = head_dim // 2
  inv_freq = theta ** (-jnp.arange(half, dtype=jnp.float32) / half)
  if scaling is None:
    return inv_freq
  s = scaling
  wavelen = 2 * math.pi / inv_freq
  smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (
      s.high_freq_factor - s.low_freq_factor)
  scaled = (1 - smooth) * inv_freq / s.factor + smooth * inv_freq  # the band between
  long = wavelen > s.original_max_position_embeddings / s.low_freq_factor
  short = wavelen < s.original_max_position_embeddings / s.high_freq_factor
  return jnp.where(long, inv_freq / s.factor, jnp.where(short, inv_freq, scaled))


def rope(x: jax.Array, positions: jax.Array, theta: float,
         scaling: Llama3RopeScaling | None = None) -> jax.Array:
  """Rotary embedding (rotate-half convention, as HF LLaMA). x [B, T, *, H], positions [B, T]."""
  inv_freq = rope_frequencies(x.shape[-1], theta, scaling)  # [H/2]
  angles = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, H/2]
  cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).astype(x.dtype)


class RMSNorm(nnx.Module):
  """x / rms(x) * scale over the last axis, computed in float32, returned in x's dtype."""

  def __init__(self, width: int, eps: float, param_dtype: str):
    self.eps = eps
    self.scale = nnx.Param(jnp.ones((width,), param_dtype), logical_axes=("norm",))

  def __call__(self, x):  # [..., width] -> [..., width]
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
    return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)
