"""A LLaMA-style decoder in Flax NNX, built from an `ArchSpec`.

Token embedding (tied or not), pre-RMSNorm blocks, RoPE, grouped-query attention whose width
n_heads*head_dim may differ from d_model, SwiGLU MLP, causal mask, no biases; the blocks it shares
with MLA (mla.py) are in layers.py. With mlp="moe" the layers from first_dense_layers on have a
mixture of experts (moe.py) instead of the SwiGLU MLP. Parameters carry logical axis names (see
partitioning.py). Axis letters in shape comments as lawsearch.model states them.

Entry points, all static-shape:
  model(tokens)                          training forward: [B, T] -> logits [B, T, V]
  model.features(tokens), output_head()  [B, T, D] and [D, V], whose product is those logits
  model.forward(tokens)                  the same logits and the MoE layers' MoEStats (losses)
  model.prefill(tokens, lengths, max_len) -> next-token logits [B, V], KVCache filled up to T
  model.decode(token, cache)             one token per row: [B] -> logits [B, V], KVCache
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lawsearch.arch import ArchSpec
from lawsearch.errors import UserError
from lawsearch.model.attention import IMPLS as ATTENTION_IMPLS
from lawsearch.model.attention import causal_attention, heads_major
from lawsearch.model.layers import Llama3RopeScaling, RMSNorm, dense, param, rope
from lawsearch.model.mla import MLAttention
from lawsearch.model.moe import MoE, MoEStats
from lawsearch.model.partitioning import constrain

DECODE_IMPLS = ("xla", "pallas")  # lawsearch.kernels.gqa_decode implementations
DTYPES = ("float32", "bfloat16", "float16")


def resolve_dtype(dtype: str, platform: str) -> str:
  """`dtype` itself, or for "auto" the compute dtype for a jax platform: float32 on CPU (no fast
  16-bit matmuls there), bfloat16 on GPU and TPU."""
  if dtype != "auto":
    return dtype
  return "float32" if platform == "cpu" else "bfloat16"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Everything the model needs besides its parameters."""

  arch: ArchSpec
  max_seq_len: int = 2048  # longest sequence (training window or KV cache length) accepted
  rope_theta: float = 500_000.0  # LLaMA-3 RoPE base
  rope_scaling: Llama3RopeScaling | None = None  # LLaMA-3.1+'s long-context frequencies
  norm_eps: float = 1e-5  # RMSNorm epsilon
  dtype: str = "float32"  # compute dtype (activations, matmul inputs); bfloat16 on accelerators
  param_dtype: str = "float32"  # storage dtype of the parameters
  attention_impl: str = "xla"  # training/prefill attention: attention.IMPLS ("grouped" for CPU)
  decode_impl: str = "xla"  # decode attention: lawsearch.kernels.gqa_decode(impl=...)
  remat: bool = False  # recompute each block's activations in the backward pass
  moe_bias_balancing: bool = False  # MoE: a RouterBias per layer (auxiliary-loss-free, moe.py)

  def __post_init__(self):
    if not isinstance(self.arch, ArchSpec):
      raise UserError(f"ModelConfig.arch must be an ArchSpec, got {type(self.arch).__name__}")
    if self.max_seq_len <= 0:
      raise UserError(f"ModelConfig.max_seq_len must be positive, got {self.max_seq_len}")
    if self.arch.head_dim % 2 and not self.arch.is_mla:  # MLA: RoPE on qk_rope_head_dim (even)
      raise UserError(f"RoPE needs an even head_dim, got {self.arch.head_dim}")
    for field, allowed in (("dtype", DTYPES), ("param_dtype", DTYPES),
                           ("attention_impl", ATTENTION_IMPLS), ("decode_impl", DECODE_IMPLS)):
      if getattr(self, field) not in allowed:
        raise UserError(f"ModelConfig.{field}={getattr(self, field)!r}; choose one of {allowed}")
    if self.moe_bias_balancing and not self.arch.is_moe:
      raise UserError("ModelConfig.moe_bias_balancing applies to mlp='moe' only")


class KVCache(NamedTuple):
  """Static-shape KV cache; row b holds `lengths[b]` valid positions.

  k, v: one array per layer, each [batch, n_kv_heads, max_len, head_dim] in the compute dtype
    (heads-major: each head's positions are contiguous, so attention reads them without a
    transpose; on CPU this made decode attention 2.7x faster than [batch, max_len, heads, dim]).
    MLA (mla.py): k is the latent cache [batch, 1, max_len, kv_lora_rank + qk_rope_head_dim],
    v is zero-width [batch, 1, max_len, 0].
  lengths: [batch] int32.
  """

  k: tuple[jax.Array, ...]
  v: tuple[jax.Array, ...]
  lengths: jax.Array


def init_cache(config: ModelConfig, batch: int, max_len: int) -> KVCache:
  """An empty cache (all lengths 0) for `batch` rows of up to `max_len` positions."""
  a = config.arch
  heads, k_dim, v_dim = ((1, a.kv_cache_width, 0) if a.is_mla
                         else (a.n_kv_heads, a.head_dim, a.head_dim))
  zeros = lambda dim: tuple(jnp.zeros((batch, heads, max_len, dim), config.dtype)
                            for _ in range(a.n_layers))
  return KVCache(zeros(k_dim), zeros(v_dim), jnp.zeros((batch,), jnp.int32))


class Attention(nnx.Module):

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
    a, pd = config.arch, config.param_dtype
    self.config = config
    std, out_std = 0.02, 0.02 / math.sqrt(2 * a.n_layers)
    self.wq = param(rngs, (a.d_model, a.n_heads, a.head_dim), std,
                    ("embed", "heads", "head_dim"), pd)
    self.wk = param(rngs, (a.d_model, a.n_kv_heads, a.head_dim), std,
                    ("embed", "kv_heads", "head_dim"), pd)
    self.wv = param(rngs, (a.d_model, a.n_kv_heads, a.head_dim), std,
                    ("embed", "kv_heads", "head_dim"), pd)
    self.wo = param(rngs, (a.n_heads, a.head_dim, a.d_model), out_std,
                    ("heads", "head_dim", "embed"), pd)

  def _qkv(self, x, positions):
    dt, theta, scaling = self.config.dtype, self.config.rope_theta, self.config.rope_scaling
    q = dense(x, self.wq[...].astype(dt))  # [B, T, N, H]
    k = dense(x, self.wk[...].astype(dt))  # [B, T, K, H]
    v = dense(x, self.wv[...].astype(dt))
    q = constrain(rope(q, positions, theta, scaling), ("act_batch", "act_seq", "act_heads", None))
    k = constrain(rope(k, positions, theta, scaling),
                  ("act_batch", "act_seq", "act_kv_heads", None))
    v = constrain(v, ("act_batch", "act_seq", "act_kv_heads", None))
    return q, k, v

  def _out(self, o):  # [B, T, N, H] -> [B, T, D]
    return dense(o, self.wo[...].astype(self.config.dtype), in_dims=2)

  def __call__(self, x, positions):
    """Causal self-attention over the whole window. Returns [B, T, D] and this window's K, V."""
    q, k, v = self._qkv(x, positions)
    o = causal_attention(q, k, v, self.config.attention_impl)
    return self._out(o), (k, v)

  def decode(self, x, positions, k_cache, v_cache, lengths):
    """One new token per row. x [B, 1, D]; caches [B, K, M, H]; lengths [B] count the new token."""
    from lawsearch.kernels import gqa_decode  # the kernel helper's dispatch (xla | pallas)

    q, k, v = self._qkv(x, positions)
    rows = jnp.arange(x.shape[0])
    k_cache = k_cache.at[rows, :, lengths - 1].set(k[:, 0])  # k [B, 1, K, H]
    v_cache = v_cache.at[rows, :, lengths - 1].set(v[:, 0])
    o = gqa_decode(q[:, 0], k_cache, v_cache, lengths, impl=self.config.decode_impl)  # [B, N, H]
    return self._out(o[:, None]), k_cache, v_cache


class MLP(nnx.Module):
  """SwiGLU: down(silu(x gate) * (x up)), of width F = `width` (default ffn_dim)."""

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs, width: int | None = None):
    a, pd = config.arch, config.param_dtype
    width = width or a.ffn_dim
    self.dtype = config.dtype
    self.gate = param(rngs, (a.d_model, width), 0.02, ("embed", "mlp"), pd)
    self.up = param(rngs, (a.d_model, width), 0.02, ("embed", "mlp"), pd)
    self.down = param(rngs, (width, a.d_model), 0.02 / math.sqrt(2 * a.n_layers),
                      ("mlp", "embed"), pd)

  def __call__(self, x):  # [B, T, D] -> [B, T, D]
    dt = self.dtype
    h = jax.nn.silu(dense(x, self.gate[...].astype(dt))) * dense(x, self.up[...].astype(dt))
    h = constrain(h, ("act_batch", "act_seq", "act_mlp"))  # [B, T, F]
    return dense(h, self.down[...].astype(dt))


def make_mlp(config: ModelConfig, index: int, rngs: nnx.Rngs) -> MLP | MoE:
  """Layer `index`'s MLP: the dense SwiGLU, or for an mlp="moe" spec from first_dense_layers on a
  MoE whose n_shared_experts shared experts are one MLP of width n_shared_experts*expert_ffn_dim."""
  a = config.arch
  if not a.is_moe or index < a.first_dense_layers:
    return MLP(config, rngs)
  shared = (MLP(config, rngs, a.n_shared_experts * a.expert_ffn_dim) if a.n_shared_experts
            else None)
  return MoE(config, rngs, shared)


class Block(nnx.Module):

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs, index: int):
    self.attn_norm = RMSNorm(config.arch.d_model, config.norm_eps, config.param_dtype)
    self.attn = (MLAttention if config.arch.is_mla else Attention)(config, rngs)
    self.mlp_norm = RMSNorm(config.arch.d_model, config.norm_eps, config.param_dtype)
    self.mlp = make_mlp(config, index, rngs)

  def _mlp(self, x):
    """x [B, T, D] -> the MLP's output [B, T, D] and its MoEStats (None for the dense MLP)."""
    return self.mlp(x) if isinstance(self.mlp, MoE) else (self.mlp(x), None)

  def __call__(self, x, positions):
    """x [B, T, D] -> x [B, T, D], this window's K, V, the MoEStats (None for a dense MLP)."""
    h, kv = self.attn(self.attn_norm(x), positions)
    x = constrain(x + h, ("act_batch", "act_seq", "act_embed"))
    h, stats = self._mlp(self.mlp_norm(x))
    x = constrain(x + h, ("act_batch", "act_seq", "act_embed"))
    return x, kv, stats

  def decode(self, x, positions, k_cache, v_cache, lengths):
    h, k_cache, v_cache = self.attn.decode(self.attn_norm(x), positions, k_cache, v_cache, lengths)
    x = x + h
    return x + self._mlp(self.mlp_norm(x))[0], k_cache, v_cache


class Transformer(nnx.Module):
  """The decoder. Its parameter count is exactly `config.arch.total_params`."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    a, pd = config.arch, config.param_dtype
    self.config = config
    self.embed = param(rngs, (a.vocab_size, a.d_model), 0.02, ("vocab", "embed"), pd)
    for i in range(a.n_layers):
      setattr(self, f"layer_{i}", Block(config, rngs, i))
    self.final_norm = RMSNorm(config.arch.d_model, config.norm_eps, config.param_dtype)
    if not a.tie_embeddings:
      self.lm_head = param(rngs, (a.d_model, a.vocab_size), 0.02, ("embed", "vocab"), pd)

  @property
  def layers(self) -> list[Block]:
    return [getattr(self, f"layer_{i}") for i in range(self.config.arch.n_layers)]

  def _embed(self, tokens):  # [B, T] int -> [B, T, D]
    table = constrain(self.embed[...].astype(self.config.dtype), (None, "act_embed"))  # all-gather
    x = jnp.take(table, tokens, axis=0)
    return constrain(x, ("act_batch", "act_seq", "act_embed"))

  def output_head(self) -> jax.Array:
    """The output projection [D, V] in the compute dtype (the embedding transposed when tied):
    logits = final_norm(hidden) @ output_head()."""
    if self.config.arch.tie_embeddings:
      return self.embed[...].astype(self.config.dtype).T
    return self.lm_head[...].astype(self.config.dtype)

  def _logits(self, x):  # [B, T, D] -> [B, T, V] in float32
    logits = dense(self.final_norm(x), self.output_head())
    return constrain(logits.astype(jnp.float32), ("act_batch", "act_seq", "act_vocab"))

  def _check_len(self, length: int):
    if length > self.config.max_seq_len:
      raise UserError(f"sequence length {length} exceeds the model's max_seq_len="
                       f"{self.config.max_seq_len}; raise model.max_seq_len or shorten the input")

  def embed_tokens(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    """tokens [B, T] int32 -> (the first layer's input [B, T, D] in the compute dtype, the
    positions [B, T] int32 every layer takes: layer(x, positions))."""
    self._check_len(tokens.shape[1])
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
    return self._embed(tokens), positions

  def _hidden(self, tokens):
    """tokens [B, T] -> final hidden states [B, T, D] (before the final norm), each layer's K, V,
    the MoE layers' MoEStats."""
    x, positions = self.embed_tokens(tokens)
    run = nnx.remat(Block.__call__) if self.config.remat else Block.__call__
    kvs, stats = [], []
    for layer in self.layers:
      x, kv, layer_stats = run(layer, x, positions)
      kvs.append(kv)
      if layer_stats is not None:  # a MoE layer
        stats.append(layer_stats)
    return x, kvs, stats

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Training forward. tokens [B, T] int32 -> logits [B, T, V] float32."""
    return self._logits(self._hidden(tokens)[0])

  def features(self, tokens: jax.Array) -> jax.Array:
    """tokens [B, T] int32 -> the final-normed hidden states [B, T, D] in the compute dtype, the
    output head's input: logits = features(tokens) @ output_head() (what __call__ returns, in
    float32). Scoring a few positions this way never forms [B, T, V]."""
    return self.final_norm(self._hidden(tokens)[0])

  def forward(self, tokens: jax.Array) -> tuple[jax.Array, MoEStats | None]:
    """Training forward with the MoE layers' auxiliary losses.

    tokens [B, T] int32 -> logits [B, T, V] float32 and MoEStats stacked over the L' MoE layers
    (load_balance_loss, z_loss [L'], tokens_per_expert [L', E]; moe.py), None for a dense model.
    """
    x, _, stats = self._hidden(tokens)
    stacked = MoEStats(*map(jnp.stack, zip(*stats))) if stats else None
    return self._logits(x), stacked

  def prefill(self, tokens: jax.Array, lengths: jax.Array, max_len: int):
    """Run right-padded prompts and fill a fresh cache.

    tokens [B, T] int32 (row b valid up to lengths[b]; padding is ignored by the causal mask for
    every valid position), lengths [B] int32, max_len >= T the static cache length.
    Returns the next-token logits [B, V] float32 (those at position lengths[b]-1; only that
    row of the output head is computed, not [B, T, V]) and a KVCache with `lengths` valid
    positions per row.
    """
    self._check_len(max_len)
    if tokens.shape[1] > max_len:
      raise UserError(f"prompt length {tokens.shape[1]} exceeds the cache length {max_len}")
    x, kvs, _ = self._hidden(tokens)
    last = jnp.take_along_axis(x, (lengths - 1)[:, None, None], axis=1)  # [B, 1, D]
    logits = self._logits(last)[:, 0]
    empty = init_cache(self.config, tokens.shape[0], max_len)
    fill = lambda c, x: jax.lax.dynamic_update_slice(c, heads_major(x).astype(c.dtype), (0,) * 4)
    ks = tuple(fill(c, k) for c, (k, _) in zip(empty.k, kvs))
    vs = tuple(fill(c, v) for c, (_, v) in zip(empty.v, kvs))
    return logits, KVCache(ks, vs, lengths.astype(jnp.int32))

  def decode(self, token: jax.Array, cache: KVCache):
    """Append one token per row. token [B] int32 at position cache.lengths[b] (must be < max_len).

    Returns logits [B, V] float32 and the cache with that token's K/V written and lengths + 1.
    """
    lengths = cache.lengths + 1
    positions = cache.lengths[:, None]  # [B, 1]
    x = self._embed(token[:, None])
    ks, vs = [], []
    for layer, k_cache, v_cache in zip(self.layers, cache.k, cache.v):
      x, k_cache, v_cache = layer.decode(x, positions, k_cache, v_cache, lengths)
      ks.append(k_cache)
      vs.append(v_cache)
    return self._logits(x)[:, 0], KVCache(tuple(ks), tuple(vs), lengths)
