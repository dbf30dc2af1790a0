"""Flash-decoding GQA attention in Pallas: block sizes, backend dispatch and the split combine.

The cache is split into `num_splits` chunks along its length, processed in parallel by the backend's
kernel (`gqa_decode_gpu` on Hopper GPUs, `gqa_decode_tpu` on TPUs and in CPU interpret mode), each
producing unnormalised partial results that `combine_splits` merges:

    o = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s,   M = max_s m_s.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lawsearch.errors import UserError
from lawsearch.kernels.reference import check_shapes

BACKENDS = ("gpu", "tpu")
# Programs to aim for when choosing the number of splits: a few per GPU multiprocessor / TPU core.
_TARGET_PROGRAMS = {"gpu": 2 * 132, "tpu": 8}


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Tiling of the kernel.

  block_kv: cache positions per block (a multiple of 64 on GPU, of 8 on TPU).
  num_splits: chunks of the cache processed in parallel (flash-decoding); None picks enough programs
    to fill the chip. The number of blocks, ceil(max_len / block_kv), must be divisible by it.
  num_stages: depth of the GPU kernel's copy pipeline (shared-memory buffers per operand).
  """

  block_kv: int = 128
  num_splits: int | None = None
  num_stages: int = 2

  def __post_init__(self):
    for name in ("block_kv", "num_stages"):
      if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
        raise UserError(f"BlockSizes.{name} must be a positive integer, got "
                         f"{getattr(self, name)!r}")
    if self.num_splits is not None and (int(self.num_splits) != self.num_splits
                                        or self.num_splits < 1):
      raise UserError(f"BlockSizes.num_splits must be a positive integer or None, got "
                       f"{self.num_splits!r}")


def default_num_splits(programs: int, n_blocks: int, backend: str) -> int:
  """The smallest divisor S of n_blocks with programs * S >= the backend's target program count."""
  for s in range(1, n_blocks + 1):
    if n_blocks % s == 0 and programs * s >= _TARGET_PROGRAMS[backend]:
      return s
  return n_blocks


def combine_splits(acc, m, l):
  """Merges per-split partials: acc [..., S, R, H], m and l [..., S, R] -> [..., R, H] f32."""
  m_max = m.max(axis=-2, keepdims=True)                        # finite: lengths >= 1
  w = jnp.exp(m - m_max)                                       # 0 for empty splits (m = -inf)
  return (w[..., None] * acc).sum(axis=-3) / (w * l).sum(axis=-2)[..., None]


def _backend_check(backend: str, dtype, interpret: bool) -> None:
  if backend not in BACKENDS:
    raise UserError(
        f"the Pallas gqa_decode kernel runs on GPU (Mosaic GPU) or TPU (Mosaic TPU), not on "
        f"{backend!r}; use impl='xla', or interpret=True for tests on CPU")
  if backend == "gpu":
    if interpret:
      raise UserError("interpret=True runs the TPU kernel's program; the Mosaic GPU kernel has no "
                       "CPU interpreter for its wgmma operands; pass backend='tpu' or omit it")
    from lawsearch.kernels.gqa_decode_gpu import DTYPES  # pylint: disable=import-outside-toplevel
    if jnp.dtype(dtype) not in map(jnp.dtype, DTYPES):
      raise UserError(f"the Mosaic GPU kernel takes bfloat16 or float16 (its tensor cores would "
                       f"round float32 to tf32), got {jnp.dtype(dtype)}; use impl='xla' for "
                       f"float32")
    devices = [dev for dev in jax.devices() if dev.platform == "gpu"]
    if devices and float(getattr(devices[0], "compute_capability", "9.0")) < 9.0:
      raise UserError(f"the Mosaic GPU kernel needs a Hopper or newer GPU (sm_90+), got "
                       f"{devices[0].device_kind}; use impl='xla'")
  else:
    from lawsearch.kernels.gqa_decode_tpu import DTYPES  # pylint: disable=import-outside-toplevel
    if jnp.dtype(dtype) not in map(jnp.dtype, DTYPES):
      raise UserError(f"the TPU kernel takes float32, bfloat16 or float16, got {jnp.dtype(dtype)}")


def gqa_decode(q, k_cache, v_cache, lengths, *, scale: float | None = None,
               block_sizes: BlockSizes | None = None, interpret: bool = False,
               backend: str | None = None) -> jax.Array:
  """Pallas flash-decoding attention; the shapes and contract of `lawsearch.kernels.gqa_decode`.

  backend: "gpu" or "tpu"; None takes jax.default_backend() ("tpu" when interpret=True). Name it
  to lower for a device other than the default (ahead-of-time compiles).
  """
  b, h, kh, g, t, d = check_shapes(q, k_cache, v_cache, lengths)
  if backend is None:
    backend = "tpu" if interpret else jax.default_backend()
  if interpret and jax.default_backend() != "cpu":
    raise UserError("interpret=True is for tests on CPU; on an accelerator call the kernel itself")
  _backend_check(backend, q.dtype, interpret)
  bs = block_sizes or BlockSizes()
  scale = d ** -0.5 if scale is None else float(scale)
  if t % bs.block_kv:
    raise UserError(f"max_len={t} (k_cache.shape[2]) must be a multiple of "
                     f"block_kv={bs.block_kv}; pad the cache or pass BlockSizes(block_kv=...)")
  n_blocks = t // bs.block_kv
  programs = b * kh if backend == "gpu" else b  # the TPU kernel takes all KV heads per program
  splits = bs.num_splits or default_num_splits(programs, n_blocks, backend)
  if n_blocks % splits:
    raise UserError(f"num_splits={splits} must divide the {n_blocks} blocks of the cache "
                     f"(max_len={t} / block_kv={bs.block_kv})")
  lengths = jnp.minimum(lengths.astype(jnp.int32), t)
  qg = q.reshape(b, kh, g, d)                                                   # [B, K, G, H]
  if backend == "gpu":
    from lawsearch.kernels import gqa_decode_gpu  # pylint: disable=import-outside-toplevel
    rows = gqa_decode_gpu.ROWS
    if g > rows or bs.block_kv % 64 or d % 64:
      raise UserError(f"the Mosaic GPU kernel needs n_heads/n_kv_heads <= {rows} (got {g}), "
                       f"block_kv a multiple of 64 (got {bs.block_kv}) and head_dim a multiple of "
                       f"64 (got {d})")
    need = gqa_decode_gpu.smem_bytes(d, q.dtype.itemsize, bs.block_kv, bs.num_stages)
    if need > gqa_decode_gpu.SMEM_BYTES:
      raise UserError(f"block_kv={bs.block_kv} x num_stages={bs.num_stages} at head_dim={d} needs "
                       f"{need} bytes of shared memory, over the {gqa_decode_gpu.SMEM_BYTES} a "
                       f"block may use; lower block_kv or num_stages")
    qg = jnp.pad(qg, ((0, 0), (0, 0), (0, rows - g), (0, 0)))                    # [B, K, 64, H]
    order = jnp.argsort(-lengths).astype(jnp.int32)                               # longest first
    acc, m, l = gqa_decode_gpu.partials(qg, k_cache, v_cache, lengths, order, groups=g,
                                        scale=scale, block_kv=bs.block_kv, num_splits=splits,
                                        num_stages=bs.num_stages)
    m, l = m[..., :g] * math.log(2.0), l[..., :g]                                 # m to natural log
  else:
    from lawsearch.kernels import gqa_decode_tpu  # pylint: disable=import-outside-toplevel
    if bs.block_kv % 8:
      raise UserError(f"the TPU kernel needs block_kv a multiple of 8, got {bs.block_kv}")
    acc, m, l = gqa_decode_tpu.partials(qg, k_cache, v_cache, lengths, scale=scale,
                                        block_kv=bs.block_kv, num_splits=splits,
                                        interpret=interpret)
  return combine_splits(acc, m, l).reshape(b, h, d).astype(q.dtype)
