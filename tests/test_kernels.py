"""lawsearch.kernels.gqa_decode: the Pallas kernel in interpret mode and the XLA path against a
float64 numpy reference; the Mosaic TPU lowering compiled ahead of time for a TPU topology; the
Mosaic GPU lowering exported for CUDA; and the errors for what is not supported."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.experimental.pallas import tpu as pltpu

from lawsearch.kernels import BlockSizes, gqa_decode, gqa_decode_reference
from lawsearch.kernels.gqa_decode_pallas import combine_splits, default_num_splits

# Interpret mode with every buffer the kernel does not write poisoned with NaN (the outputs too).
POISONED = pltpu.InterpretParams(uninitialized_memory="nan")
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2, jnp.float16: 2e-2}
MAX_LEN, BLOCK = 256, 64


def make_case(seed, n_kv, group, head_dim, dtype, lengths):
  """Fresh random q, k, v; cache rows beyond each length hold large values the mask must hide."""
  rng = np.random.default_rng(seed)
  b = len(lengths)
  q = rng.standard_normal((b, n_kv * group, head_dim))
  k = rng.standard_normal((b, n_kv, MAX_LEN, head_dim))
  v = rng.standard_normal((b, n_kv, MAX_LEN, head_dim))
  beyond = np.arange(MAX_LEN)[None, None, :, None] >= np.asarray(lengths)[:, None, None, None]
  k, v = np.where(beyond, 50.0 * k, k), np.where(beyond, 50.0 * v, v)
  return (jnp.asarray(q, dtype), jnp.asarray(k, dtype), jnp.asarray(v, dtype),
          jnp.asarray(lengths, jnp.int32))


def rel_err(out, ref):
  out = np.asarray(out, np.float64)
  assert np.isfinite(out).all(), "output has NaN/inf: an element was not written"
  return np.linalg.norm(out - ref) / np.linalg.norm(ref)


# (KV heads, query heads per KV head, head_dim, dtype): GQA 1, 2, 4, 8 and multi-query (K = 1).
CASES = [
    (4, 1, 64, jnp.float32),
    (2, 2, 128, jnp.bfloat16),
    (2, 4, 64, jnp.bfloat16),
    (2, 8, 128, jnp.float32),
    (1, 8, 64, jnp.float32),
    (1, 4, 128, jnp.float16),
]
# Length 1, lengths that are not block multiples (one inside the second split), the full cache.
LENGTHS = [1, 77, 200, MAX_LEN]


@pytest.mark.parametrize("n_kv,group,head_dim,dtype", CASES,
                         ids=[f"K{c[0]}_G{c[1]}_D{c[2]}_{jnp.dtype(c[3]).name}" for c in CASES])
def test_pallas_interpret_matches_float64(n_kv, group, head_dim, dtype):
  q, k, v, lengths = make_case(hash((n_kv, group, head_dim)) % 2**31, n_kv, group, head_dim, dtype,
                               LENGTHS)
  out = gqa_decode(q, k, v, lengths, impl="pallas", interpret=POISONED,
                   block_sizes=BlockSizes(block_kv=BLOCK, num_splits=2))
  assert out.shape == q.shape and out.dtype == q.dtype
  assert rel_err(out, gqa_decode_reference(q, k, v, lengths)) < TOL[dtype]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_xla_matches_float64(dtype):
  q, k, v, lengths = make_case(7, 2, 4, 64, dtype, LENGTHS)
  out = jax.jit(gqa_decode)(q, k, v, lengths)
  assert out.dtype == q.dtype
  assert rel_err(out, gqa_decode_reference(q, k, v, lengths)) < TOL[dtype]


def test_reference_single_position_is_its_value():
  # With one valid position the softmax is 1 on it: the output is that position's value row.
  q, k, v, lengths = make_case(3, 2, 2, 64, jnp.float32, [1, 1])
  ref = gqa_decode_reference(q, k, v, lengths)
  np.testing.assert_allclose(ref, np.repeat(np.asarray(v[:, :, 0], np.float64), 2, axis=1), rtol=1e-12)


def test_combine_splits_ignores_empty_splits():
  # Two splits: the second saw nothing (m = -inf, l = 0, acc = 0); the first is already exact.
  acc = jnp.array([[[2.0, 4.0]], [[0.0, 0.0]]])              # [S=2, R=1, D=2]
  m = jnp.array([[0.5], [-jnp.inf]])
  l = jnp.array([[2.0], [0.0]])
  np.testing.assert_allclose(combine_splits(acc, m, l), [[1.0, 2.0]])


def test_default_num_splits_fills_the_chip():
  assert default_num_splits(programs=256, n_blocks=64, backend="gpu") == 2    # 512 >= 264
  assert default_num_splits(programs=8, n_blocks=12, backend="gpu") == 12     # all blocks
  assert default_num_splits(programs=1, n_blocks=6, backend="tpu") == 6


def _tpu_topology():
  try:
    from jax.experimental import topologies
    return topologies.get_topology_desc(topology_name="v5e:2x2", platform="tpu")
  except Exception as e:  # noqa: BLE001 -- any failure means no TPU compiler here
    pytest.skip(f"TPU runtime (libtpu, the tpu-aot extra) unavailable for AOT compiles: {e}")


@pytest.mark.parametrize("head_dim,dtype", [(64, jnp.bfloat16), (128, jnp.float32)])
def test_tpu_lowering_compiles_ahead_of_time(head_dim, dtype):
  sharding = jax.sharding.SingleDeviceSharding(_tpu_topology().devices[0])
  b, n_kv, group, t = 4, 8, 4, 1024
  shapes = [(b, n_kv * group, head_dim), (b, n_kv, t, head_dim), (b, n_kv, t, head_dim)]
  args = [jax.ShapeDtypeStruct(s, dtype, sharding=sharding) for s in shapes]
  args.append(jax.ShapeDtypeStruct((b,), jnp.int32, sharding=sharding))
  fn = jax.jit(lambda *a: gqa_decode(*a, impl="pallas", backend="tpu",
                                     block_sizes=BlockSizes(block_kv=128, num_splits=2)))
  compiled = fn.trace(*args).lower().compile()
  assert "tpu_custom_call" in compiled.as_text()


def test_mosaic_gpu_lowering_exports_for_cuda():
  # Lowers the Mosaic GPU kernel to its CUDA custom call on this CPU machine (PTX is built on the
  # GPU at load time; correctness there is checked by experiments/gpu_decode.py).
  from jax import export
  b, n_kv, group, d, t = 2, 4, 9, 64, 512
  args = [jax.ShapeDtypeStruct((b, n_kv * group, d), jnp.bfloat16),
          jax.ShapeDtypeStruct((b, n_kv, t, d), jnp.bfloat16),
          jax.ShapeDtypeStruct((b, n_kv, t, d), jnp.bfloat16),
          jax.ShapeDtypeStruct((b,), jnp.int32)]
  fn = jax.jit(lambda *a: gqa_decode(*a, impl="pallas", backend="gpu",
                                     block_sizes=BlockSizes(block_kv=128, num_splits=2)))
  exported = export.export(fn, platforms=["cuda"])(*args)
  assert "mosaic_gpu" in exported.mlir_module()


def test_errors_are_explicit():
  q, k, v, lengths = make_case(0, 2, 2, 64, jnp.float32, [5, 9])
  with pytest.raises(ValueError, match="impl must be one of"):
    gqa_decode(q, k, v, lengths, impl="triton")
  with pytest.raises(ValueError, match="interpret=True"):  # CPU without interpret: no fallback
    gqa_decode(q, k, v, lengths, impl="pallas")
  with pytest.raises(ValueError, match="bfloat16 or float16"):  # tf32 would break f32 accuracy
    gqa_decode(q, k, v, lengths, impl="pallas", backend="gpu")
  with pytest.raises(ValueError, match="apply to impl='pallas' only"):
    gqa_decode(q, k, v, lengths, impl="xla", interpret=True)
  with pytest.raises(ValueError, match="multiple of block_kv"):
    gqa_decode(q, k, v, lengths, impl="pallas", interpret=True, block_sizes=BlockSizes(100))
  with pytest.raises(ValueError, match="must divide"):
    gqa_decode(q, k, v, lengths, impl="pallas", interpret=True, block_sizes=BlockSizes(64, 3))
  with pytest.raises(ValueError, match="not a multiple of n_kv_heads"):
    gqa_decode(q[:, :3], k, v, lengths)
  with pytest.raises(ValueError, match="disagree on batch or head_dim"):
    gqa_decode(q[:, :, :32], k, v, lengths)
  with pytest.raises(ValueError, match="share one dtype"):
    gqa_decode(q.astype(jnp.bfloat16), k, v, lengths)
  with pytest.raises(ValueError, match="positive integer"):
    BlockSizes(block_kv=0)
  q16, k16, v16, lengths = make_case(1, 1, 2, 128, jnp.bfloat16, [5])
  with pytest.raises(ValueError, match="shared memory"):  # 3 stages of 128x128 K and V: > 227 KiB
    gqa_decode(q16, k16, v16, lengths, impl="pallas", backend="gpu",
               block_sizes=BlockSizes(128, 1, num_stages=3))
