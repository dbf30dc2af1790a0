"""Multi-head latent attention (DeepSeek-V2/V3) in Flax NNX, built from an MLA `ArchSpec`.

Keys and values come from one latent c = RMSNorm(x wkv_a[:R]) of width R = kv_lora_rank, shared
by all heads, plus one RoPE key x wkv_a[R:] of width P = qk_rope_head_dim shared by all heads:

    q      = x wq  (or RMSNorm(x wq_a) wq_b)       [B, T, N, nope + P]; RoPE on the last P
    k_nope = c wkv_b[..., :nope]                    [B, T, N, nope]
    v      = c wkv_b[..., nope:]                    [B, T, N, Hv]
    k      = [k_nope, rope(x wkv_a[R:])]            the RoPE key broadcast over the heads
    out    = softmax(q.k / sqrt(nope + P)) v wo

Training and prefill run that (the "naive" form, through `attention.causal_attention`). Decode
keeps only [c, k_rope] per position (R + P elements per token per layer: `ArchSpec.kv_cache_width`)
and uses the absorbed form: wkv_b's key half is folded into the query (q_lat = q_nope W_UK^T,
[B, N, R]) and its value half into the output, so attention runs over the latent cache as
multi-query attention with key width R + P and value = the latent itself:

    scores = [q_lat, q_rope] . [c, k_rope]^T / sqrt(nope + P);  o = (p c) W_UV wo

The latent cache is one array [B, 1, M, R + P] (the cache's k slot; its v slot is zero-width);
the decode attention is `kernels.mla_decode`: impl "xla" or "pallas", chosen explicitly, as GQA.
Axis letters as lawsearch.model states them; R latent rank, P RoPE width, Hv value head width.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx

from lawsearch.kernels.mla_decode import mla_decode
from lawsearch.model.attention import causal_attention
from lawsearch.model.layers import RMSNorm, dense, param, rope
from lawsearch.model.partitioning import constrain


class MLAttention(nnx.Module):
  """Multi-head latent attention; the same interface as transformer.Attention, with a latent
  cache: the k slot holds [c, k_rope] [B, 1, M, R + P], the v slot is [B, 1, M, 0]."""

  def __init__(self, config, rngs: nnx.Rngs):
    a, pd = config.arch, config.param_dtype
    self.config = config
    std, out_std = 0.02, 0.02 / math.sqrt(2 * a.n_layers)
    h, qk, rank, rope_w = a.n_heads, a.head_dim, a.kv_lora_rank, a.qk_rope_head_dim
    if a.q_lora_rank:
      self.wq_a = param(rngs, (a.d_model, a.q_lora_rank), std, ("embed", "q_lora"), pd)
      self.q_norm = RMSNorm(a.q_lora_rank, config.norm_eps, pd)
      self.wq_b = param(rngs, (a.q_lora_rank, h, qk), std, ("q_lora", "heads", "head_dim"), pd)
    else:
      self.wq = param(rngs, (a.d_model, h, qk), std, ("embed", "heads", "head_dim"), pd)
    self.wkv_a = param(rngs, (a.d_model, rank + rope_w), std, ("embed", "kv_lora"), pd)
    self.kv_norm = RMSNorm(rank, config.norm_eps, pd)
    self.wkv_b = param(rngs, (rank, h, a.qk_nope_head_dim + a.v_head_dim), std,
                       ("kv_lora", "heads", "head_dim"), pd)
    self.wo = param(rngs, (h, a.v_head_dim, a.d_model), out_std, ("heads", "head_dim", "embed"),
                    pd)

  def _rope(self, x, positions):
    return rope(x, positions, self.config.rope_theta, self.config.rope_scaling)

  def _query(self, x, positions):
    """x [B, T, D] -> q_nope [B, T, N, nope], q_rope [B, T, N, P] (rotated)."""
    dt, nope = self.config.dtype, self.config.arch.qk_nope_head_dim
    if self.config.arch.q_lora_rank:
      q = dense(self.q_norm(dense(x, self.wq_a[...].astype(dt))), self.wq_b[...].astype(dt))
    else:
      q = dense(x, self.wq[...].astype(dt))  # [B, T, N, nope + P]
    q = constrain(q, ("act_batch", "act_seq", "act_heads", None))
    return q[..., :nope], self._rope(q[..., nope:], positions)

  def _latent(self, x, positions):
    """x [B, T, D] -> the cache entry [c, k_rope] [B, T, 1, R + P] (c normalised, k rotated)."""
    rank = self.config.arch.kv_lora_rank
    kv = dense(x, self.wkv_a[...].astype(self.config.dtype))  # [B, T, R + P]
    c = self.kv_norm(kv[..., :rank])
    k_rope = self._rope(kv[:, :, None, rank:], positions)  # [B, T, 1, P]
    return jnp.concatenate([c[:, :, None, :], k_rope], axis=-1)

  def _out(self, o):  # [B, T, N, Hv] -> [B, T, D]
    return dense(o, self.wo[...].astype(self.config.dtype), in_dims=2)

  def __call__(self, x, positions):
    """Causal self-attention over the window (naive form). Returns [B, T, D] and this window's
    cache entries: ([B, T, 1, R + P], a zero-width [B, T, 1, 0])."""
    a, dt = self.config.arch, self.config.dtype
    q_nope, q_rope = self._query(x, positions)
    latent = self._latent(x, positions)  # [B, T, 1, R + P]
    kv = dense(latent[:, :, 0, :a.kv_lora_rank], self.wkv_b[...].astype(dt))  # [B, T, N, nope+Hv]
    k_nope, v = kv[..., :a.qk_nope_head_dim], kv[..., a.qk_nope_head_dim:]
    k_rope = jnp.broadcast_to(latent[..., a.kv_lora_rank:], q_rope.shape)
    heads = ("act_batch", "act_seq", "act_heads", None)
    q = constrain(jnp.concatenate([q_nope, q_rope], -1), heads)  # [B, T, N, nope + P]
    k = constrain(jnp.concatenate([k_nope, k_rope], -1), heads)
    impl = self.config.attention_impl
    if impl in ("xla", "cudnn") and a.v_head_dim != a.head_dim:  # these need equal widths
      width = max(a.head_dim, a.v_head_dim)
      widen = lambda t: jnp.pad(t, ((0, 0),) * 3 + ((0, width - t.shape[-1]),))  # zero columns
      # q is scaled so that the kernel's 1/sqrt(width) is the model's 1/sqrt(head_dim)
      q, k, v = widen(q * math.sqrt(width / a.head_dim)), widen(k), widen(v)
    o = causal_attention(q, k, v, impl)[..., :a.v_head_dim]  # [B, T, N, Hv]
    return self._out(o), (latent, latent[..., :0])

  def decode(self, x, positions, cache, empty, lengths):
    """One new token per row, absorbed form. x [B, 1, D]; cache [B, 1, M, R + P] (the empty
    [B, 1, M, 0] passes through); lengths [B] count the new token."""
    a, dt = self.config.arch, self.config.dtype
    nope = a.qk_nope_head_dim
    q_nope, q_rope = self._query(x, positions)  # [B, 1, N, nope], [B, 1, N, P]
    rows = jnp.arange(x.shape[0])
    cache = cache.at[rows, :, lengths - 1].set(self._latent(x, positions)[:, 0])
    w_b = self.wkv_b[...].astype(dt)  # [R, N, nope + Hv]
    q_lat = jnp.einsum("bnk,rnk->bnr", q_nope[:, 0], w_b[..., :nope])  # [B, N, R]
    o = mla_decode(q_lat, q_rope[:, 0], cache, lengths, scale=a.head_dim ** -0.5,
                   impl=self.config.decode_impl)  # [B, N, R]: attention over the latent
    o = jnp.einsum("bnr,rnv->bnv", o, w_b[..., nope:])  # [B, N, Hv]
    return self._out(o[:, None]), cache, empty
