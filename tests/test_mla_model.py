"""The MLA decoder: its parameter leaves against ArchSpec's accounting (DeepSeek-V3 included),
prefill + decode through the latent cache against the full forward pass, the cache's bytes per
token against the accounting, and the latent-cache decode attention (xla, and the Pallas kernel in
interpret mode) against a float64 numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lawsearch import cost
from lawsearch.arch import preset
from lawsearch.errors import UserError
from lawsearch.kernels import BlockSizes
from lawsearch.kernels.mla_decode import mla_decode, mla_decode_reference
from lawsearch.model import ModelConfig, abstract_model, build, param_count

from decoding import assert_decode_matches_forward

NANO_MLA = preset("nano-mla")


@pytest.mark.parametrize("spec", [NANO_MLA, NANO_MLA.replace(q_lora_rank=24),
                                  preset("deepseek-v2-lite-dense"), preset("deepseek-v3-dense")],
                         ids=["nano", "nano-q-lora", "v2-lite", "v3"])
def test_param_leaves_equal_archspec(spec):
  model = abstract_model(ModelConfig(spec))
  assert param_count(model) == spec.total_params
  layer = nnx.state(model.layer_0.attn, nnx.Param)
  assert sum(x.size for x in jax.tree.leaves(layer)) == spec.attn_params_per_layer


def _sharpened(config, seed=0):
  # Weights 5x the init scale, so that logits differ by O(1) between positions and a wrong
  # cache entry could not hide below the tolerance.
  model = build(config, seed)
  state = nnx.state(model, nnx.Param)
  nnx.update(model, jax.tree.map(lambda x: x * 5.0, state))
  return model


@pytest.mark.parametrize("q_lora_rank,impl", [(0, "grouped"), (24, "xla")])
def test_prefill_and_latent_decode_match_full_forward(q_lora_rank, impl):
  config = ModelConfig(NANO_MLA.replace(q_lora_rank=q_lora_rank), max_seq_len=32,
                       attention_impl=impl)
  model = _sharpened(config)
  tokens = jax.random.randint(jax.random.key(1), (3, 14), 0, NANO_MLA.vocab_size)
  full = np.asarray(model(tokens))  # [B, T, V]
  assert np.ptp(full, axis=-1).mean() > 1.0
  # several prompt lengths, then decode to position 13
  assert_decode_matches_forward(model, tokens, full, [1, 4, 9], max_len=16)


def test_latent_cache_bytes_per_token_equal_the_accounting():
  config = ModelConfig(NANO_MLA, max_seq_len=32)
  model = build(config)
  _, cache = model.prefill(jnp.zeros((2, 4), jnp.int32), jnp.array([4, 2]), 16)
  nbytes = sum(x.nbytes for x in jax.tree.leaves((cache.k, cache.v)))
  assert nbytes / (2 * 16) == cost.kv_cache_bytes_per_token(NANO_MLA, 4) == 2 * 40 * 4


def _operands(seed, batch=2, heads=4, rank=32, rope=8, max_len=64):
  k = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(k[0], (batch, heads, rank)),
          jax.random.normal(k[1], (batch, heads, rope)),
          jax.random.normal(k[2], (batch, 1, max_len, rank + rope)))


class TestLatentDecode:
  INTERPRET = False  # the Pallas subclass below runs the same cases in interpret mode on CPU
  IMPL = "xla"

  def _run(self, *args, **kw):
    extra = {} if self.IMPL == "xla" else {"interpret": self.INTERPRET,
                                          "block_sizes": BlockSizes(block_kv=16)}
    return mla_decode(*args, impl=self.IMPL, **kw, **extra)

  @pytest.mark.parametrize("lengths", [(1, 64), (17, 40)])
  def test_matches_reference(self, lengths):
    q_lat, q_rope, cache = _operands(0)
    lengths = jnp.array(lengths, jnp.int32)
    out = self._run(q_lat, q_rope, cache, lengths, scale=0.2)
    assert out.shape == q_lat.shape
    ref = mla_decode_reference(q_lat, q_rope, cache, lengths, scale=0.2)
    np.testing.assert_allclose(out, ref, atol=2e-5)

  def test_shape_mismatch(self):
    q_lat, q_rope, cache = _operands(0)
    with pytest.raises(UserError, match="R \\+ P = 40"):
      self._run(q_lat, q_rope, cache[..., :36], jnp.array([3, 3]), scale=0.2)


class TestLatentDecodePallasInterpret(TestLatentDecode):
  INTERPRET = True
  IMPL = "pallas"


def test_pallas_decode_on_cpu_is_an_error_not_a_fallback():
  config = ModelConfig(NANO_MLA, max_seq_len=32, decode_impl="pallas")
  model = build(config)
  _, cache = model.prefill(jnp.zeros((1, 3), jnp.int32), jnp.array([3]), 16)
  with pytest.raises(UserError, match="runs on GPU .* not on .cpu"):
    model.decode(jnp.zeros((1,), jnp.int32), cache)


def _tpu_device():
  try:
    from jax.experimental import topologies  # pylint: disable=import-outside-toplevel
    return topologies.get_topology_desc(topology_name="v5e:2x2", platform="tpu").devices[0]
  except Exception as e:  # noqa: BLE001 -- any failure means no TPU compiler here
    pytest.skip(f"TPU runtime (libtpu, the tpu-aot extra) unavailable for AOT compiles: {e}")


def test_latent_kernel_compiles_for_tpu_at_deepseek_v3_shape():
  # 128 heads, R 512 + P 64, bfloat16: the Mosaic TPU lowering of the latent-cache kernel.
  sharding = jax.sharding.SingleDeviceSharding(_tpu_device())
  b, heads, t = 2, 128, 1024
  shapes = [((b, heads, 512), jnp.bfloat16), ((b, heads, 64), jnp.bfloat16),
            ((b, 1, t, 576), jnp.bfloat16), ((b,), jnp.int32)]
  args = [jax.ShapeDtypeStruct(s, d, sharding=sharding) for s, d in shapes]
  fn = jax.jit(lambda *a: mla_decode(*a, scale=192 ** -0.5, impl="pallas", backend="tpu",
                                     block_sizes=BlockSizes(block_kv=128, num_splits=2)))
  assert "tpu_custom_call" in fn.trace(*args).lower().compile().as_text()


def test_gpu_path_exports_for_cuda():
  # On GPUs the Mosaic GPU GQA kernel serves the latent cache (one KV head, values = keys), at
  # widths its shared memory holds: R 192 + P 64 here; DeepSeek-V3's 576 is refused (below).
  from jax import export  # pylint: disable=import-outside-toplevel
  args = lambda rank: [jax.ShapeDtypeStruct((2, 16, rank), jnp.bfloat16),
                       jax.ShapeDtypeStruct((2, 16, 64), jnp.bfloat16),
                       jax.ShapeDtypeStruct((2, 1, 512, rank + 64), jnp.bfloat16),
                       jax.ShapeDtypeStruct((2,), jnp.int32)]
  fn = lambda block: jax.jit(lambda *a: mla_decode(
      *a, scale=192 ** -0.5, impl="pallas", backend="gpu",
      block_sizes=BlockSizes(block_kv=block, num_splits=2, num_stages=1)))
  assert "mosaic_gpu" in export.export(fn(64), platforms=["cuda"])(*args(192)).mlir_module()
  with pytest.raises(UserError, match="shared memory"):
    export.export(fn(64), platforms=["cuda"])(*args(512))


def test_mla_weights_are_named_in_the_rules_table():
  # Every MLA parameter's logical axes resolve with the one rules table; a table without the
  # latent widths' rules is refused by name.
  from lawsearch.configs.train import SHARDING_RULES  # pylint: disable=C0415
  from lawsearch.model import logical_axes  # pylint: disable=import-outside-toplevel
  from lawsearch.model.partitioning import logical_to_spec  # pylint: disable=C0415
  names = jax.tree.leaves(logical_axes(abstract_model(ModelConfig(NANO_MLA.replace(
      q_lora_rank=24)))), is_leaf=lambda x: isinstance(x, tuple))
  assert {"kv_lora", "q_lora"} <= {n for axes in names for n in axes}
  for axes in names:
    logical_to_spec(axes, SHARDING_RULES)
  without_latents = tuple(r for r in SHARDING_RULES if r[0] not in ("q_lora", "kv_lora"))
  with pytest.raises(UserError, match="kv_lora"):
    for axes in names:
      logical_to_spec(axes, without_latents)
