"""The mixture-of-experts MLP (lawsearch/model/moe.py) and the MoE decoder: forward and gradients
against a dense one-hot reference, the identical-experts limit, parameter leaves against
ArchSpec's accounting, prefill + decode against the full forward, the auxiliary losses by hand,
auxiliary-loss-free bias balancing, and the sharded forward on 8 devices against one device."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from lawsearch import arch
from lawsearch.configs.train import SHARDING_RULES
from lawsearch.errors import UserError
from lawsearch.model import ModelConfig, abstract_model, build, param_count
from lawsearch.model.moe import (MoE, RouterBias, grouped_matmul, load_balance_loss, route,
                                 update_router_bias, z_loss)
from lawsearch.model.partitioning import axis_rules
from lawsearch.model.transformer import MLP, make_mlp
from lawsearch.train import mesh as mesh_lib
from lawsearch.train.step import Model

from decoding import assert_decode_matches_forward

BASE = arch.ArchSpec(3, 16, 2, 1, 8, 48, 64)  # d_model 16; layer 0 keeps the dense MLP of 48


def _spec(router="softmax", shared=0, top_k=2, n_experts=4, base=BASE, norm=True):
  return arch.moe(base, n_experts=n_experts, top_k=top_k, expert_ffn_dim=8,
                  n_shared_experts=shared, first_dense_layers=1,
                  router=router).replace(norm_topk_prob=norm)


def _scaled(module, scale):
  """`module` with its parameters `scale` x the init's (20 x: outputs of order 1)."""
  nnx.update(module, jax.tree.map(lambda p: p * scale, nnx.state(module, nnx.Param)))
  return module


def _moe(spec, seed=0, scale=20.0, **config):
  """Layer 1's MoE (built under jit: one compile instead of one per eager op)."""
  build_layer = lambda: _scaled(make_mlp(ModelConfig(spec, **config), 1, nnx.Rngs(params=seed)),
                                scale)
  return nnx.jit(build_layer)()


def _x(shape=(2, 5, 16), seed=1):
  return jax.random.normal(jax.random.key(seed), shape)


def _reference(p, x, spec):
  """Plain jnp from the definitions: every expert on every token, masked to each token's top_k
  and weighted; the shared experts as n_shared_experts separate SwiGLUs of width f; the losses.
  p: the MoE's parameters as a pure dict; x [M, D]. Returns y [M, D], balance loss, z-loss."""
  logits = x @ p["router"]  # [M, E]
  s = jax.nn.softmax(logits) if spec.router == "softmax" else jax.nn.sigmoid(logits)
  rank = jnp.argsort(jnp.argsort(-s, axis=-1), axis=-1)  # 0 for each token's best expert
  mask = rank < spec.top_k  # [M, E]
  w = jnp.where(mask, s, 0.0)
  w = w / w.sum(-1, keepdims=True) if spec.norm_topk_prob else w
  h = jax.nn.silu(jnp.einsum("md,edf->mef", x, p["gate"])) * jnp.einsum("md,edf->mef", x, p["up"])
  y = jnp.einsum("me,med->md", w, jnp.einsum("mef,efd->med", h, p["down"]))
  f = spec.expert_ffn_dim
  for i in range(spec.n_shared_experts):
    g, u, d = (p["shared"][k] for k in ("gate", "up", "down"))
    cols = slice(i * f, (i + 1) * f)
    y += (jax.nn.silu(x @ g[:, cols]) * (x @ u[:, cols])) @ d[cols]
  probs = s / s.sum(-1, keepdims=True)  # softmax rows already sum to 1
  balance = spec.n_experts * jnp.sum(mask.mean(0) / spec.top_k * probs.mean(0))
  return y, balance, jnp.mean(jax.nn.logsumexp(logits, axis=-1) ** 2)


@pytest.mark.parametrize("router, norm", [("softmax", True), ("sigmoid", True),
                                          ("softmax", False)])
@pytest.mark.parametrize("shared", [0, 2])
def test_forward_and_gradients_match_one_hot_reference(router, norm, shared):
  spec = _spec(router, shared, norm=norm)
  graphdef, params = nnx.split(_moe(spec))
  x = _x()
  cotangent = jax.random.normal(jax.random.key(2), x.shape)

  def loss(params, x):  # the output against a random cotangent, plus both auxiliary losses
    y, stats = nnx.merge(graphdef, params)(x)
    return jnp.sum(y * cotangent) + stats.load_balance_loss + 0.1 * stats.z_loss, (y, stats)

  def ref_loss(p, x):
    y, balance, z = _reference(p, x.reshape(-1, 16), spec)
    return jnp.sum(y.reshape(x.shape) * cotangent) + balance + 0.1 * z, (y, balance, z)

  (_, (y, stats)), grads = jax.jit(jax.value_and_grad(loss, (0, 1), has_aux=True))(params, x)
  (_, (y_ref, balance, z)), ref_grads = jax.jit(jax.value_and_grad(ref_loss, (0, 1),
                                                                   has_aux=True))(
      nnx.to_pure_dict(params), x)
  assert np.abs(y).mean() > 0.1  # outputs of order 1, so the tolerance below means something
  np.testing.assert_allclose(y.reshape(-1, 16), y_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(stats.load_balance_loss, balance, rtol=1e-5)
  np.testing.assert_allclose(stats.z_loss, z, rtol=1e-5)
  assert int(stats.tokens_per_expert.sum()) == x.shape[0] * x.shape[1] * spec.top_k  # dropless
  got = jax.tree.leaves((nnx.to_pure_dict(grads[0]), grads[1]))
  want = jax.tree.leaves(ref_grads)
  assert len(got) == len(want) == 5 + (3 if shared else 0)  # x, router, gate, up, down, shared
  for g, r in zip(got, want):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_top_1_reaches_the_router_only_without_renormalisation():
  # One renormalised weight is always 1: the output, and so the LM loss, has no gradient in the
  # router. The router's own probability as the weight (Switch Transformer) passes one.
  x, cotangent = _x(), jax.random.normal(jax.random.key(2), (2, 5, 16))

  def router_gradient(norm):  # the largest |d output / d router| (float32: x / x rounds off)
    graphdef, params = nnx.split(_moe(_spec(top_k=1, norm=norm)))
    output = lambda params: jnp.sum(nnx.merge(graphdef, params)(x)[0] * cotangent)
    return np.abs(nnx.to_pure_dict(jax.jit(jax.grad(output))(params))["router"]).max()

  renormalised, switch = router_gradient(True), router_gradient(False)
  assert switch > 1e-2 and renormalised < 1e-4 * switch, (renormalised, switch)


@pytest.mark.parametrize("router", ["softmax", "sigmoid"])
def test_every_expert_chosen_and_identical_is_the_dense_mlp(router):
  # top_k = E: every token uses every expert with weights summing to 1, so E copies of one
  # SwiGLU of width f combine to that SwiGLU.
  spec = _spec(router, top_k=4)
  config = ModelConfig(spec)
  moe = _moe(spec)
  dense = _scaled(MLP(config, nnx.Rngs(params=3), spec.expert_ffn_dim), 20.0)
  for name in ("gate", "up", "down"):
    getattr(moe, name)[...] = jnp.broadcast_to(getattr(dense, name)[...], getattr(moe, name).shape)
  x = _x()
  np.testing.assert_allclose(nnx.jit(lambda m, x: m(x)[0])(moe, x), dense(x), rtol=1e-5,
                             atol=1e-5)


def test_param_leaves_equal_archspec():
  spec = _spec("sigmoid", shared=1)  # layer 0 dense, layers 1-2 MoE
  model = abstract_model(ModelConfig(spec))
  assert param_count(model) == (spec.non_embedding_params + spec.embedding_params
                                + spec.norm_params)
  assert isinstance(model.layer_0.mlp, MLP) and isinstance(model.layer_1.mlp, MoE)
  per_layer = spec.expert_params * (spec.n_experts + spec.n_shared_experts)
  per_layer += spec.router_params_per_layer
  assert sum(x.size for x in jax.tree.leaves(nnx.state(model.layer_2.mlp, nnx.Param))) == per_layer
  # The bias of auxiliary-loss-free balancing is state, not a parameter.
  biased = abstract_model(ModelConfig(spec, moe_bias_balancing=True))
  assert param_count(biased) == param_count(model)
  assert len(jax.tree.leaves(nnx.state(biased, RouterBias))) == spec.moe_layers


@pytest.mark.parametrize("name", ["mixtral-8x7b", "olmoe-1b-7b"])
def test_preset_leaves_equal_archspec(name):
  spec = arch.preset(name)
  assert param_count(abstract_model(ModelConfig(spec))) == spec.total_params


def test_deepseek_v3_moe_layer_leaves_equal_archspec():
  # One layer, abstractly: 256 routed experts and a shared one of 2048, a 7168 x 256 router.
  spec = arch.preset("deepseek-v3")
  layer = nnx.eval_shape(lambda: make_mlp(ModelConfig(spec), 3, nnx.Rngs(params=0)))
  leaves = jax.tree.leaves(nnx.state(layer, nnx.Param))
  assert sum(x.size for x in leaves) == (spec.expert_params * 257 + spec.router_params_per_layer)


def test_configuration_errors():
  with pytest.raises(UserError, match="mlp='moe' only"):
    ModelConfig(BASE, moe_bias_balancing=True)
  with pytest.raises(UserError, match="n_shared_experts=2 but shared experts were not given"):
    MoE(ModelConfig(_spec(shared=2)), nnx.Rngs(params=0), None)


@pytest.mark.parametrize("spec", [
    _spec("softmax", shared=1),
    _spec("sigmoid", shared=1, base=arch.preset("nano-mla").replace(n_layers=3))],
    ids=["gqa-softmax", "mla-sigmoid"])
def test_prefill_and_decode_match_full_forward(spec):
  config = ModelConfig(spec, max_seq_len=32, attention_impl="grouped")
  # Weights 5 x the init's: logits of order 1 apart, so a wrong cache entry could not hide.
  model = nnx.jit(lambda: _scaled(build(config), 5.0))()
  tokens = jax.random.randint(jax.random.key(1), (3, 12), 0, spec.vocab_size)
  full = np.asarray(nnx.jit(lambda m, t: m(t))(model, tokens))  # [B, T, V]
  assert np.ptp(full, axis=-1).mean() > 0.5
  assert_decode_matches_forward(model, tokens, full, [1, 4, 8], max_len=16)


@pytest.mark.parametrize("router", ["softmax", "sigmoid"])
def test_uniform_router_balance_loss_is_one_and_z_loss_log_e_squared(router):
  # All-equal logits: P_e = 1/E, so E * sum_e f_e P_e = sum_e f_e = 1 whatever the (tied) choice;
  # every logsumexp is log E.
  moe = _moe(_spec(router))
  moe.router[...] = jnp.zeros_like(moe.router[...])
  _, stats = nnx.jit(lambda m, x: m(x))(moe, _x())
  np.testing.assert_allclose(stats.load_balance_loss, 1.0, rtol=1e-6)
  np.testing.assert_allclose(stats.z_loss, math.log(4) ** 2, rtol=1e-6)


def test_losses_by_hand():
  # Top-1 of probs [[.75, .25], [.5, .5]]: expert 0 twice (ties go to the lower index), so
  # f = (1, 0), P = (.625, .375): 2 * .625. Rows of logits log(1, 3) and log(2, 2) both have
  # logsumexp log 4.
  probs = jnp.array([[0.75, 0.25], [0.5, 0.5]])
  _, experts, _ = route(jnp.log(probs), "softmax", 1)
  counts = jnp.bincount(experts.reshape(-1), length=2)
  np.testing.assert_array_equal(counts, [2, 0])
  np.testing.assert_allclose(load_balance_loss(probs, counts), 1.25, rtol=1e-6)
  np.testing.assert_allclose(z_loss(jnp.log(jnp.array([[1.0, 3.0], [2.0, 2.0]]))),
                             math.log(4) ** 2, rtol=1e-6)


def test_bias_chooses_experts_but_leaves_weights_alone():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.2]]))
  weights, experts, _ = route(logits, "softmax", 2, bias=jnp.array([0.0, -1.0, 0.0]))
  np.testing.assert_array_equal(experts, [[0, 2]])
  np.testing.assert_allclose(weights, [[0.5 / 0.7, 0.2 / 0.7]], rtol=1e-6)


def test_bias_update_moves_load_toward_balance():
  spec = _spec("sigmoid", top_k=1)
  moe = _moe(spec, scale=1.0, moe_bias_balancing=True)
  moe.router[...] = moe.router[...].at[:, 0].add(0.3)  # x has mean 1: expert 0 takes most
  x = _x((4, 64, 16)) + 1.0
  load = nnx.jit(lambda m, x: m(x)[1].tokens_per_expert)
  imbalance = lambda counts: float(counts.max() / counts.mean())  # 1 when balanced, E at worst
  first = load(moe, x)
  assert imbalance(first) > 3.5
  for _ in range(60):
    moe.bias[...] = update_router_bias(moe.bias[...], load(moe, x), rate=0.01)
  assert imbalance(load(moe, x)) < 1.3
  assert float(moe.bias[0]) < 0 < float(moe.bias[1:].min())  # the busy expert pushed down


def test_sharded_forward_equals_single_device():
  # A 2 x 2 x 2 (data, fsdp, tensor) mesh with the config's rules: experts split over fsdp, their
  # width over tensor, the batch over data and fsdp.
  spec = _spec("softmax", shared=1, n_experts=8, base=BASE.replace(n_layers=2))
  model = Model(ModelConfig(spec, max_seq_len=32, attention_impl="grouped"))
  params = jax.tree.map(lambda p: p * 5.0, model.init(0))
  tokens = jax.random.randint(jax.random.key(1), (4, 16), 0, 64)
  forward = lambda p, t: model.module(p).forward(t)
  want = jax.jit(forward)(params, tokens)
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  shardings = mesh_lib.tree_shardings(mesh, SHARDING_RULES, model.axes, model.shapes)
  assert shardings["layer_1"]["mlp"]["gate"].spec == P("fsdp", None, "tensor")
  with axis_rules(mesh, SHARDING_RULES):
    got = jax.jit(forward)(jax.device_put(params, shardings),
                           jax.device_put(tokens, mesh_lib.batch_sharding(mesh, SHARDING_RULES)))
  assert len(got[0].sharding.device_set) == 8
  # The same routing; values to 1e-5 of the largest logit (partial sums over tensor shards add
  # in another order).
  np.testing.assert_array_equal(got[1].tokens_per_expert, want[1].tokens_per_expert)
  np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-5 * np.abs(want[0]).max())
  np.testing.assert_allclose(got[1].load_balance_loss, want[1].load_balance_loss, rtol=1e-5)
  np.testing.assert_allclose(got[1].z_loss, want[1].z_loss, rtol=1e-5)


@pytest.mark.parametrize("sizes", [(0, 5, 70, 0, 3), (64, 0, 0, 0, 0), (1, 0, 1, 0, 0)])
def test_grouped_matmul_both_ways_is_each_groups_product(sizes):
  # Uneven groups, empty ones, one group holding every row, and a decode step's two rows; the
  # reference is float64 numpy, group by group. Gradients of the two ways agree too.
  group_sizes = jnp.array(sizes, jnp.int32)
  lhs = jax.random.normal(jax.random.key(0), (sum(sizes), 6))
  rhs = jax.random.normal(jax.random.key(1), (len(sizes), 6, 7))
  starts = np.cumsum((0,) + sizes[:-1])
  want = np.concatenate([np.asarray(lhs, np.float64)[s:s + n] @ np.asarray(rhs[g], np.float64)
                         for g, (s, n) in enumerate(zip(starts, sizes))])
  cotangent = jax.random.normal(jax.random.key(2), want.shape)
  grads = {}
  for impl, block in (("ragged", 0), ("blocked", 4), ("blocked", 64)):
    out = grouped_matmul(lhs, rhs, group_sizes, impl, block=max(block, 1))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    grads[impl, block] = jax.grad(lambda a, b: jnp.sum(grouped_matmul(
        a, b, group_sizes, impl, block=max(block, 1)) * cotangent), (0, 1))(lhs, rhs)
  for got in list(grads.values())[1:]:
    for g, r in zip(got, grads["ragged", 0]):
      np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)
  with pytest.raises(UserError, match="impl="):
    grouped_matmul(lhs, rhs, group_sizes, "dense")
