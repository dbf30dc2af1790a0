"""A dropless mixture-of-experts MLP (Flax NNX) for an `ArchSpec` with mlp="moe".

Every token goes to its top_k routed experts, with no capacity limit (nothing is dropped), plus
the shared experts:

    s       = softmax(x router)            (router="softmax", Mixtral, Qwen3-MoE)
            | sigmoid(x router)            (router="sigmoid", DeepSeek-V3)   [B*T, E] float32
    experts = top_k(s + bias)              bias: auxiliary-loss-free balancing, 0 without it
    w       = s[experts] / sum s[experts]  [B*T, A]: the chosen scores renormalised to sum to 1
            | s[experts]                   (norm_topk_prob=False: Switch Transformer, OLMoE)
    y       = sum_a w_a SwiGLU_{experts_a}(x) + SwiGLU_shared(x)

The routed experts are stacked parameters (gate, up [E, D, F], down [E, F, D]). Their token-slots
(token, choice) are sorted by expert, so each expert's slots are contiguous, and run through
a grouped matmul over those groups (`grouped_matmul`); the outputs are put back in slot order and
combined with w. On GPU and TPU that is `jax.lax.ragged_dot` (top_k experts' FLOPs per token);
XLA:CPU lowers ragged_dot to a matmul against every expert with the other groups masked (E / top_k
times the work), so on CPU each expert's slots are padded to blocks of BLOCK rows and each block
multiplied by its expert's weights in one batched matmul instead.
DeepSeek-V3's group-limited routing and routed scaling factor are not part of this family.

Auxiliary losses (float32, over the B*T tokens of the call; `MoEStats`):

    load_balance_loss = E * sum_e f_e P_e     (Switch Transformer, Fedus et al. 2021, eq. 4)
        f_e = (token-slots routed to e) / (B*T*top_k), P_e = mean over tokens of p_e(x), with
        p = softmax(logits) (softmax router) or s / sum_e s (sigmoid router, DeepSeek-V3's
        normalised scores). Sum f = sum P = 1, so the loss is 1 whenever P is uniform (and when f
        is), and E at worst (all tokens on one expert that takes all the probability).
    z_loss = mean over tokens of logsumexp(logits)^2   (ST-MoE, Zoph et al. 2022, eq. 5)

Auxiliary-loss-free balancing (DeepSeek-V3, Wang et al. 2024): with
`ModelConfig.moe_bias_balancing` the module holds a per-expert bias (`RouterBias`, not a
parameter: no gradient reaches it) that moves only the choice of experts, never w; the train
loop moves it after each step with `update_router_bias` from `MoEStats.tokens_per_expert`.

Axis letters as lawsearch.model states them, and E experts, A = top_k routed experts per token,
F = expert_ffn_dim (here), C = B*T*A token-slots.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lawsearch.errors import UserError
from lawsearch.model.layers import dense, param

BLOCK = 64  # grouped_matmul's most rows per block on CPU (experiments/bench_moe_cpu.py)


class RouterBias(nnx.Variable):
  """Auxiliary-loss-free balancing's per-expert bias [E] float32, added to the router scores to
  choose experts only. A Variable, not an nnx.Param: optimizers and param counts leave it out."""


class MoEStats(NamedTuple):
  """What one MoE call reports (`Transformer.forward` stacks them over the MoE layers)."""

  load_balance_loss: jax.Array  # shape=(), float32: E * sum_e f_e P_e, 1 when balanced
  z_loss: jax.Array  # shape=(), float32: mean over tokens of logsumexp(router logits)^2
  tokens_per_expert: jax.Array  # shape=(E,), int32: token-slots routed to each expert


def route(logits: jax.Array, router: str, top_k: int, bias: jax.Array | None = None,
          normalise: bool = True):
  """Top-k routing (module docstring).

  Args:
    logits: [M, E] float32 router logits of M tokens.
    router: "softmax" or "sigmoid" (ArchSpec.router).
    top_k: routed experts per token, A.
    bias: [E] added to the scores to choose the experts only, or None.
    normalise: renormalise the chosen scores to sum to 1 (ArchSpec.norm_topk_prob).
  Returns:
    weights [M, A] float32 (rows sum to 1 when normalised), experts [M, A] int32 (by descending
    biased score), probs [M, E] float32 (the router's distribution over experts, for the balance loss).
  """
  scores = jax.nn.softmax(logits, axis=-1) if router == "softmax" else jax.nn.sigmoid(logits)
  _, experts = jax.lax.top_k(scores if bias is None else scores + bias, top_k)
  chosen = jnp.take_along_axis(scores, experts, axis=-1)
  weights = chosen / chosen.sum(-1, keepdims=True) if normalise else chosen
  probs = scores if router == "softmax" else scores / scores.sum(-1, keepdims=True)
  return weights, experts, probs


def load_balance_loss(probs: jax.Array, tokens_per_expert: jax.Array) -> jax.Array:
  """E * sum_e f_e P_e. probs [M, E] (rows sum to 1), tokens_per_expert [E] -> [] float32."""
  f = tokens_per_expert / tokens_per_expert.sum()
  return probs.shape[-1] * jnp.sum(f * probs.mean(0))


def z_loss(logits: jax.Array) -> jax.Array:
  """mean over tokens of logsumexp(logits)^2. logits [M, E] float32 -> [] float32."""
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1) ** 2)


def update_router_bias(bias: jax.Array, tokens_per_expert: jax.Array, rate: float) -> jax.Array:
  """bias + rate * sign(mean load - load): underloaded experts are chosen more often next step.

  bias [E] float32, tokens_per_expert [E] (a step's MoEStats.tokens_per_expert), rate: the bias
  update speed (DeepSeek-V3: 0.001). Returns the new bias [E] float32.
  """
  load = tokens_per_expert.astype(jnp.float32)
  return bias + rate * jnp.sign(load.mean() - load)


def grouped_matmul(lhs: jax.Array, rhs: jax.Array, group_sizes: jax.Array,
                   impl: str | None = None, block: int = BLOCK) -> jax.Array:
  """Row group g of lhs times rhs[g]: lhs [C, K] (rows sorted by group), rhs [G, K, N],
  group_sizes [G] int32 summing to C -> [C, N].

  impl "ragged": `jax.lax.ragged_dot` (a grouped matmul on GPU and TPU; XLA:CPU multiplies every
  row by every group's matrix, G times the FLOPs). impl "blocked": each group's rows padded to a
  multiple of b = min(block, C // G) rows (1 at least: a decode step's few rows take one block
  each), each block of rows times its group's matrix as one batched matmul: at most
  C + G * (b - 1) rows' FLOPs on any backend. None: "blocked" on CPU, else "ragged".
  """
  impl = impl or ("blocked" if jax.default_backend() == "cpu" else "ragged")
  if impl == "ragged":
    return jax.lax.ragged_dot(lhs, rhs, group_sizes)
  if impl != "blocked":
    raise UserError(f"grouped_matmul impl={impl!r}; choose 'ragged' or 'blocked'")
  rows, groups = lhs.shape[0], rhs.shape[0]
  block = max(1, min(block, rows // groups))
  padded = (group_sizes + block - 1) // block * block  # [G] each group's rows, padded
  padded_end = jnp.cumsum(padded)
  group = jnp.repeat(jnp.arange(groups), group_sizes, total_repeat_length=rows)  # [C]
  first = jnp.cumsum(group_sizes) - group_sizes  # [G] each group's first row in lhs
  at = (padded_end - padded)[group] + jnp.arange(rows) - first[group]  # [C] row in the buffer
  n_blocks = -(-(rows + groups * (block - 1)) // block)  # the most blocks any split needs
  buffer = jnp.zeros((n_blocks * block, lhs.shape[1]), lhs.dtype).at[at].set(lhs)
  block_group = jnp.minimum(jnp.searchsorted(padded_end, jnp.arange(n_blocks) * block,
                                             side="right"), groups - 1)  # [n_blocks]
  out = jnp.einsum("nbk,nkm->nbm", buffer.reshape(n_blocks, block, -1), rhs[block_group])
  return out.reshape(n_blocks * block, -1)[at]


class MoE(nnx.Module):
  """Routed SwiGLU experts, shared experts and a router; [B, T, D] -> [B, T, D], MoEStats.

  Its parameters are ArchSpec's per-MoE-layer count: expert_params*(n_experts + n_shared_experts)
  + router_params_per_layer. `shared` holds the n_shared_experts shared experts as one SwiGLU of
  width n_shared_experts*expert_ffn_dim (transformer.MLP, built by the caller since this module
  sits below transformer.py): summing separate SwiGLUs of width f is the same function, since the
  width-concatenated gate/up and down split into the separate experts' blocks; None when
  n_shared_experts = 0.
  """

  def __init__(self, config, rngs: nnx.Rngs, shared: nnx.Module | None):
    a, pd = config.arch, config.param_dtype
    if not a.is_moe:
      raise UserError(f"MoE needs an ArchSpec with mlp='moe', got mlp={a.mlp!r}")
    if (shared is None) != (a.n_shared_experts == 0):
      raise UserError(f"n_shared_experts={a.n_shared_experts} but shared experts were "
                      f"{'not ' if shared is None else ''}given")
    self.config = config
    e, d, f = a.n_experts, a.d_model, a.expert_ffn_dim
    self.router = param(rngs, (d, e), 0.02, ("embed", "expert"), pd)
    self.gate = param(rngs, (e, d, f), 0.02, ("expert", "embed", "mlp"), pd)
    self.up = param(rngs, (e, d, f), 0.02, ("expert", "embed", "mlp"), pd)
    self.down = param(rngs, (e, f, d), 0.02 / math.sqrt(2 * a.n_layers),
                      ("expert", "mlp", "embed"), pd)
    self.shared = shared
    self.bias = (RouterBias(jnp.zeros((e,), jnp.float32), logical_axes=("expert",))
                 if config.moe_bias_balancing else None)

  def __call__(self, x: jax.Array):
    """x [B, T, D] -> y [B, T, D] in x's dtype, MoEStats over the B*T tokens."""
    a = self.config.arch
    xf = x.reshape(-1, x.shape[-1])  # [B*T, D]
    logits = dense(xf.astype(jnp.float32), self.router[...].astype(jnp.float32))  # [B*T, E]
    bias = None if self.bias is None else self.bias[...]
    weights, experts, probs = route(logits, a.router, a.top_k, bias, a.norm_topk_prob)
    y, counts = self._routed(xf, weights, experts)
    y = y.reshape(x.shape)
    if self.shared is not None:
      y = y + self.shared(x)
    return y, MoEStats(load_balance_loss(probs, counts), z_loss(logits), counts)

  def _routed(self, x, weights, experts):
    """x [M, D], weights [M, A], experts [M, A] -> sum_a w_a SwiGLU_a(x) [M, D], counts [E]."""
    dt, top_k = self.config.dtype, experts.shape[-1]
    slots = experts.reshape(-1)  # [C]: slot c is token c // A's (c % A)-th choice
    order = jnp.argsort(slots, stable=True)  # [C]: slots grouped by expert, in expert order
    counts = jnp.bincount(slots, length=self.config.arch.n_experts).astype(jnp.int32)  # [E]
    xs = jnp.take(x, order // top_k, axis=0)  # [C, D], sorted
    grouped = lambda lhs, w: grouped_matmul(lhs, w[...].astype(dt), counts)  # [C, *]
    h = jax.nn.silu(grouped(xs, self.gate)) * grouped(xs, self.up)  # [C, F]
    ys = grouped(h, self.down)  # [C, D], sorted
    unsort = jnp.zeros_like(order).at[order].set(jnp.arange(order.size))  # inverse permutation
    y = jnp.take(ys, unsort, axis=0).reshape(*experts.shape, -1)  # [M, A, D], slot order
    return (y * weights[..., None].astype(dt)).sum(1), counts
