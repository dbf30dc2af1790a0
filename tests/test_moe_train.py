"""Training MoE models with their auxiliary losses (lawsearch/train/step.py, loop.py): the loop
logs the MoE metrics, the step's loss is the cross-entropy plus the weighted layer means, zero
weights give the cross-entropy's gradients, and dense runs keep their step and their names."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lawsearch import arch, configlib
from lawsearch.errors import UserError
from lawsearch.model import ModelConfig
from lawsearch.rundir import RunIdentity
from lawsearch.train import loop
from lawsearch.train import step as step_lib
from lawsearch.train.metrics import read

NANO = "configs/train.py:preset=nano,data=synthetic"
MOE_ARGS = ["--config.model.arch.mlp=moe", "--config.model.arch.n_experts=8",
            "--config.model.arch.top_k=2", "--config.model.arch.expert_ffn_dim=32"]
BASE = arch.ArchSpec(2, 16, 2, 1, 8, 48, 64)  # d_model 16, vocabulary 64
MOE = arch.moe(BASE, n_experts=4, top_k=2, expert_ffn_dim=8, first_dense_layers=0)


def _batch(vocab=64, shape=(4, 8), seed=0):
  tokens = jax.random.randint(jax.random.key(seed), (shape[0], shape[1] + 1), 0, vocab)
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}


def _params(model, scale=20.0):
  """Parameters scaled up from the init's so the router is far from uniform."""
  return jax.tree.map(lambda p: p * scale, model.init(0))


def test_moe_run_trains_and_logs_its_auxiliary_losses(tmp_path):
  args = MOE_ARGS + ["--config.train.steps=3", "--config.train.batch_size=8",
                     "--config.train.seq_len=16", "--config.model.max_seq_len=16",
                     "--config.train.log_every=1", "--config.train.checkpoint_every=0",
                     "--config.train.eval_every=0", "--config.train.eval_batches=1"]
  result = loop.train(configlib.load(NANO, args), str(tmp_path), progress=False)
  assert math.isfinite(result["loss"]) and math.isfinite(result["train_loss"])
  assert json.load(open(tmp_path / "result.json")) == result
  records = [r for r in read(os.path.join(tmp_path, "metrics.jsonl")) if "grad_norm" in r]
  assert [r["step"] for r in records] == [1, 2, 3]
  for r in records:
    assert r["moe_load_balance_loss"] >= 1 - 1e-5  # E * sum f P is 1 at best (moe.py)
    assert r["moe_z_loss"] > 0 and 1 <= r["moe_max_load"] <= 8 / 2


def test_moe_loss_is_cross_entropy_plus_weighted_layer_means():
  model = step_lib.Model(ModelConfig(MOE))
  params, batch = _params(model), _batch()
  logits, stats = jax.jit(model.module(params).forward)(batch["inputs"])
  ce = step_lib.cross_entropy(logits, batch["targets"])
  total, m = jax.jit(step_lib.make_moe_loss(model, 0.5, 0.25))(params, *batch.values())
  want = ce + 0.5 * stats.load_balance_loss.mean() + 0.25 * stats.z_loss.mean()
  np.testing.assert_allclose(total, want, rtol=1e-6)
  np.testing.assert_allclose(m["loss"], ce, rtol=1e-6)
  assert float(m["moe_load_balance_loss"]) > 1.01  # scaled router: measurably unbalanced
  load = np.asarray(stats.tokens_per_expert, np.float64)  # [L', E]
  np.testing.assert_allclose(m["moe_max_load"], (load.max(1) / load.mean(1)).max(), rtol=1e-6)


def test_zero_weights_give_the_cross_entropy_gradients():
  model = step_lib.Model(ModelConfig(MOE))
  params, batch = _params(model), _batch()
  ce_only = lambda p: step_lib.cross_entropy(model.apply(p, batch["inputs"]), batch["targets"])
  want = jax.jit(jax.grad(ce_only))(params)
  # SGD with rate 1 and no clipping: the update is minus the gradient.
  tx, schedule = optax.sgd(1.0), lambda _: 1.0
  state = step_lib.make_init(model, tx, 0)()._replace(params=params)
  step = jax.jit(step_lib.make_train_step(model, tx, schedule))
  new, m = step(state, batch)
  assert set(m) == {"loss", "grad_norm", "lr", *step_lib.MOE_METRICS}
  for p, q, g in zip(*map(jax.tree.leaves, (params, new.params, want))):
    np.testing.assert_allclose(p - q, g, atol=1e-6, rtol=1e-5)
  # A positive balance weight moves the router: its gradient differs from the cross-entropy's.
  weighted = jax.jit(step_lib.make_train_step(model, tx, schedule, moe_load_balance_weight=1.0))
  moved, _ = weighted(state, batch)
  router = lambda s: s.params["layer_0"]["mlp"]["router"]
  assert not np.allclose(router(moved), router(new), atol=1e-6)


def test_moe_gradient_accumulation_averages_the_losses():
  model = step_lib.Model(ModelConfig(MOE))
  params, batch, tx = _params(model), _batch(), optax.sgd(1.0)
  state = step_lib.make_init(model, tx, 0)()._replace(params=params)
  make = lambda a: jax.jit(step_lib.make_train_step(model, tx, lambda _: 1.0, grad_accum_steps=a,
                                                    moe_load_balance_weight=0.01))
  _, full = make(1)(state, batch)
  _, accum = make(2)(state, batch)
  loss = jax.jit(step_lib.make_moe_loss(model, 0.01, 0.0))
  halves = [loss(params, batch["inputs"][i:i + 2], batch["targets"][i:i + 2])[1] for i in (0, 2)]
  for key in ("loss",) + step_lib.MOE_METRICS:
    np.testing.assert_allclose(accum[key], (halves[0][key] + halves[1][key]) / 2, rtol=1e-5)
  np.testing.assert_allclose(accum["loss"], full["loss"], rtol=1e-5)


def _old_dense_step(model, tx, schedule, grad_accum_steps):
  """make_train_step as it was before MoE losses (the dense model's step must not change)."""

  def loss_and_grad(params, inputs, targets):
    return jax.value_and_grad(lambda p: step_lib.cross_entropy(model.apply(p, inputs),
                                                               targets))(params)

  def step(state, batch):
    inputs, targets = batch["inputs"], batch["targets"]
    if grad_accum_steps == 1:
      loss, grads = loss_and_grad(state.params, inputs, targets)
    else:
      micro = lambda x: x.reshape(grad_accum_steps, -1, *x.shape[1:])

      def body(acc, xs):
        return jax.tree.map(jnp.add, acc, loss_and_grad(state.params, *xs)), None

      zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params))
      (loss, grads), _ = jax.lax.scan(body, zeros, (micro(inputs), micro(targets)))
      loss, grads = jax.tree.map(lambda g: g / grad_accum_steps, (loss, grads))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    metrics = {"loss": loss, "grad_norm": optax.tree_utils.tree_norm(grads),
               "lr": schedule(state.step)}
    return state._replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state), metrics

  return step


@pytest.mark.parametrize("accum", [1, 2])
def test_dense_step_is_unchanged_bit_for_bit(accum):
  model = step_lib.Model(ModelConfig(BASE))
  tx, schedule = optax.adamw(1e-3), lambda _: 1e-3
  state, batch = step_lib.make_init(model, tx, 0)(), _batch()
  # Weights given to a dense model are ignored: its step never calls forward.
  new = jax.jit(step_lib.make_train_step(model, tx, schedule, grad_accum_steps=accum,
                                         moe_load_balance_weight=0.01, moe_z_loss_weight=0.001))
  got, got_m = new(state, batch)
  want, want_m = jax.jit(_old_dense_step(model, tx, schedule, accum))(state, batch)
  assert set(got_m) == set(want_m) == {"loss", "grad_norm", "lr"}
  for a, b in zip(jax.tree.leaves((got, got_m)), jax.tree.leaves((want, want_m))):
    np.testing.assert_array_equal(a, b)


def test_dense_identity_leaves_out_the_moe_weights():
  config = configlib.load(NANO)
  assert (config.train.moe_load_balance_weight, config.train.moe_z_loss_weight) == (0.01, 0.001)
  identity = RunIdentity.of(config)
  assert not [k for k in identity.fields if "moe" in k]
  older = json.loads(config.to_json())  # a config.json from before the fields
  del older["train"]["moe_load_balance_weight"], older["train"]["moe_z_loss_weight"]
  assert RunIdentity.of(older) == identity
  loop.check_ranges(configlib.load(NANO))
  changed = configlib.load(NANO, ["--config.train.moe_z_loss_weight=0.01"])
  assert RunIdentity.of(changed).fields["train.moe_z_loss_weight"] == 0.01


def test_negative_moe_weights_are_refused():
  config = configlib.load(NANO, ["--config.train.moe_load_balance_weight=-0.1"])
  with pytest.raises(UserError, match="train.moe_load_balance_weight=-0.1"):
    loop.check_ranges(config)


# -- auxiliary-loss-free balancing (router biases moved by the step) --------------------------------
def test_a_step_moves_each_router_bias_by_the_rate_against_its_load():
  rate = 0.01
  biased = step_lib.Model(ModelConfig(MOE, moe_bias_balancing=True))
  plain = step_lib.Model(ModelConfig(MOE))
  tx, schedule = optax.adamw(1e-3, weight_decay=0.1), lambda _: 1e-3
  state, batch = step_lib.make_init(biased, tx, 0)(), _batch()
  new, m = jax.jit(step_lib.make_train_step(biased, tx, schedule, moe_bias_update_rate=rate))(
      state, batch)
  assert "tokens_per_expert" not in m
  # The loads, by hand: the model's own forward at the step's parameters (biases still zero).
  _, stats = biased.module(state.params).forward(batch["inputs"])
  load = np.asarray(stats.tokens_per_expert, np.float64)  # [L', E]
  for j, i in enumerate(range(MOE.first_dense_layers, MOE.n_layers)):
    want = rate * np.sign(load[j].mean() - load[j])
    np.testing.assert_allclose(new.params[f"layer_{i}"]["mlp"]["bias"], want, atol=1e-9)
  # Everything else is the step of the same model without biases (zero biases route the same
  # tokens; their zero gradients leave the clipped norm and Adam's other updates unchanged).
  twin_state = step_lib.make_init(plain, tx, 0)()
  twin, twin_m = jax.jit(step_lib.make_train_step(plain, tx, schedule))(twin_state, batch)
  strip = lambda p: {k: ({**v, "mlp": {n: w for n, w in v["mlp"].items() if n != "bias"}}
                         if k.startswith("layer_") else v) for k, v in p.items()}
  for a, b in zip(jax.tree.leaves(strip(new.params)), jax.tree.leaves(twin.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(m["loss"], twin_m["loss"], rtol=1e-6)


def test_bias_balancing_needs_a_biased_moe_model():
  model = step_lib.Model(ModelConfig(MOE))
  with pytest.raises(ValueError, match="moe_bias_balancing"):
    step_lib.make_train_step(model, optax.sgd(1.0), lambda _: 1.0, moe_bias_update_rate=0.01)
  dense = configlib.load(NANO, ["--config.train.moe_bias_update_rate=0.01"])
  with pytest.raises(UserError, match="mlp='moe' only"):
    loop.model_config(dense)


def test_a_biased_moe_run_killed_mid_run_resumes_to_the_same_losses(tmp_path):
  import signal  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  import crashing  # pylint: disable=import-outside-toplevel

  args = MOE_ARGS + ["--config.train.steps=6", "--config.train.batch_size=8",
                     "--config.train.seq_len=16", "--config.model.max_seq_len=16",
                     "--config.train.log_every=1", "--config.train.checkpoint_every=2",
                     "--config.train.eval_every=0", "--config.train.eval_batches=1",
                     "--config.train.moe_bias_update_rate=0.01"]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def train(workdir, env=None):
    cmd = [sys.executable, "-m", "lawsearch.cli", "train", f"--config={NANO}", *args,
           "--no-progress", f"--workdir={workdir}"]
    return subprocess.run(cmd, cwd=root, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=240)

  losses = lambda w: {r["step"]: r["loss"] for r in read(os.path.join(w, "metrics.jsonl"))
                      if "loss" in r}
  reference = tmp_path / "reference"
  assert train(reference).returncode == 0
  workdir = tmp_path / "run"
  killed = train(workdir, crashing.at_step(3))
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  resumed = train(workdir)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resuming at step 2" in resumed.stdout
  assert losses(workdir) == losses(reference)  # the biases came back with the checkpoint
  loads = [r["moe_max_load"] for r in read(os.path.join(workdir, "metrics.jsonl"))
           if "moe_max_load" in r]
  assert len(loads) == 6 and all(1 <= v <= 4 for v in loads)
